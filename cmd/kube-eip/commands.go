package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
)

// command is a subcommand of kube-eip. Adding one is an entry in commands
// and a flags function in a file named for it.
type command struct {
	name    string
	summary string
	// flags registers the subcommand's flags on fs and returns what runs
	// it once they are parsed.
	flags func(fs *flag.FlagSet) runFunc
}

// runFunc runs a subcommand; its logger is in ctx, and stdout is for its
// result, not its logs.
type runFunc func(ctx context.Context, stdout io.Writer) error

var commands = []command{
	{name: "webhook", summary: "serve the mutating admission webhook for pods", flags: webhookFlags},
	{name: "binder", summary: "associate each managed pod's Elastic IP with its network interface, and release it after", flags: binderFlags},
	{name: "wait", summary: "block until the pod's Elastic IP is attached (the kube-eip-wait init container)", flags: waitFlags},
	{name: "uninstall", summary: "release every address kube-eip holds and let its pods go (the chart's pre-delete hook)", flags: uninstallFlags},
	{name: "selftest", summary: "check that the webhook answers a dry-run pod (the chart's helm test)", flags: selftestFlags},
	{name: "version", summary: "print the version", flags: versionFlags},
}

// lookup finds the subcommand named by args[0] and returns it with the rest
// of args. Without one it handles help and mistakes itself and returns the
// exit code instead.
func lookup(args []string, stdout, stderr io.Writer) (*command, []string, int) {
	if len(args) == 0 {
		usage(stderr)
		return nil, nil, exitUsage
	}
	name, rest := args[0], args[1:]
	if name == "help" || name == "-h" || name == "-help" || name == "--help" {
		// "help wait" shows the flags of wait, as "wait -h" does.
		if len(rest) == 1 && find(rest[0]) != nil {
			return find(rest[0]), []string{"-h"}, exitOK
		}
		usage(stdout)
		return nil, nil, exitOK
	}
	if cmd := find(name); cmd != nil {
		return cmd, rest, exitOK
	}
	printf(stderr, "kube-eip: unknown command %q\n\n", name)
	usage(stderr)
	return nil, nil, exitUsage
}

// parse parses the subcommand's flags, and -v which all of them take. A nil
// runFunc means there is nothing to run, and the int is the exit code.
func (c *command) parse(args []string, stderr io.Writer) (runFunc, verbosity, int) {
	fs := flag.NewFlagSet("kube-eip "+c.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var v verbosity
	fs.Var(&v, "v", "log verbosity: 0 for progress, 1 for every change seen, more for detail")
	start := c.flags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, 0, exitOK
		}
		return nil, 0, exitUsage // the flag package has printed why
	}
	if fs.NArg() > 0 {
		printf(stderr, "kube-eip %s: unexpected arguments %q\n", c.name, fs.Args())
		fs.Usage()
		return nil, 0, exitUsage
	}
	return start, v, exitOK
}

// verbosity is -v, a logr V level. It is an int8 because zap keeps levels
// in one, as the negated V level.
type verbosity int8

func (v *verbosity) String() string { return strconv.Itoa(int(*v)) }

func (v *verbosity) Set(s string) error {
	n, err := strconv.ParseInt(s, 10, 8)
	if err != nil || n < 0 {
		return errors.New("want a number from 0 to 127")
	}
	*v = verbosity(n)
	return nil
}

// deprecated is a flag that a subcommand no longer uses. It is still
// accepted, so that an upgrade with an old command line starts, and a
// process given it says where its setting went.
type deprecated struct {
	name, moved string
	value       string
	set         bool
}

// deprecatedFlag registers the flag name on fs as one that moved away
// (moved says where).
func deprecatedFlag(fs *flag.FlagSet, name, moved string) *deprecated {
	d := &deprecated{name: name, moved: moved}
	fs.Func(name, "deprecated and ignored: "+moved, func(s string) error {
		d.value, d.set = s, true
		return nil
	})
	return d
}

// warn logs that the flag was given and is ignored.
func (d *deprecated) warn(log logr.Logger) {
	if d.set {
		log.Info("WARNING: --"+d.name+" is deprecated and ignored; "+d.moved, "value", d.value)
	}
}

func find(name string) *command {
	for i := range commands {
		if commands[i].name == name {
			return &commands[i]
		}
	}
	return nil
}

func usage(w io.Writer) {
	printf(w, "Usage: kube-eip <command> [flags]\n\nCommands:\n")
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	for _, c := range commands {
		printf(tw, "  %s\t%s\n", c.name, c.summary)
	}
	printf(tw, "  help\tthis text; \"kube-eip help <command>\" for a command's flags\n")
	_ = tw.Flush() // see printf
}

// printf writes a message for the user. Its error is dropped: the writer
// is the terminal or the container log, and there is nowhere else to
// report that it failed.
func printf(w io.Writer, format string, args ...any) {
	_, _ = fmt.Fprintf(w, format, args...)
}

// apiConfig is the API server client configuration of the webhook and the
// binder: the usual kubeconfig or in-cluster lookup, without compression.
// The API server gzips a watch that starts with a streamed list (how
// client-go's informers start) one event at a time; for the small events of
// managed pods that cost it about 0.45 ms of CPU per pod created (profiled
// in the e2e stack), more than the bytes saved are worth inside a cluster.
func apiConfig() (*rest.Config, error) {
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return nil, err
	}
	cfg.DisableCompression = true
	return cfg, nil
}

// defaultNamespace is kube-eip's namespace when neither the flag nor the
// pod says otherwise: the one its manifests install into.
const defaultNamespace = "kube-eip-system"

// serviceAccountNamespace is where the kubelet tells a pod its namespace.
const serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// podNamespace is the namespace kube-eip runs in: POD_NAMESPACE (the
// downward API), else the mounted service account's, else
// defaultNamespace.
func podNamespace() string {
	if ns := strings.TrimSpace(os.Getenv("POD_NAMESPACE")); ns != "" {
		return ns
	}
	if b, err := os.ReadFile(serviceAccountNamespace); err == nil && strings.TrimSpace(string(b)) != "" {
		return strings.TrimSpace(string(b))
	}
	return defaultNamespace
}

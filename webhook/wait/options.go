package wait

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"github.com/go-logr/logr"

	"github.com/kube-eip/kube-eip/api"
)

// Defaults of Options.
const (
	// DefaultTimeout bounds the wait. An init container that waits forever
	// hides a broken binder behind a pod stuck in Init; failing after a
	// while makes the kubelet restart it with backoff and shows the reason.
	DefaultTimeout = 10 * time.Minute
	// DefaultPollInterval is how often the file is re-read besides the
	// filesystem events, which can be missed (no inotify instances left,
	// event queue overflow, a volume that does not report changes).
	DefaultPollInterval = 250 * time.Millisecond
	// DefaultProgressInterval spaces the "still waiting" log lines.
	DefaultProgressInterval = 30 * time.Second
)

// DefaultLabelsFile is where the webhook mounts the downward-API labels.
var DefaultLabelsFile = path.Join(api.PodInfoMountPath, api.PodInfoLabelsFile)

// Options configures Run. The zero value waits for api.LabelPublicIP in
// DefaultLabelsFile with the default timings.
type Options struct {
	// LabelsFile is the downward-API file holding metadata.labels.
	LabelsFile string
	// Label is the key whose value must become an IPv4 address.
	Label string
	// Timeout bounds the wait; zero means DefaultTimeout. There is no way
	// to wait forever, on purpose.
	Timeout time.Duration
	// PollInterval is how often the file is re-read even without a
	// filesystem event; zero means DefaultPollInterval.
	PollInterval time.Duration
	// ProgressInterval spaces the "still waiting" log lines; zero means
	// DefaultProgressInterval.
	ProgressInterval time.Duration
	// Log receives progress; without a sink, the logger of Run's context.
	Log logr.Logger
	// Out receives the one line announcing the address; nil means stdout.
	Out io.Writer
}

// complete fills in the defaults and refuses settings Run cannot honour.
func (o Options) complete() (Options, error) {
	if o.LabelsFile == "" {
		o.LabelsFile = DefaultLabelsFile
	}
	if o.Label == "" {
		o.Label = api.LabelPublicIP
	}
	// The kubelet writes key="value" lines; a key with these characters
	// could never match one.
	if strings.ContainsAny(o.Label, "=\n\" \t") {
		return o, errors.New("label key must not contain '=', quotes or whitespace")
	}
	var err error
	if o.Timeout, err = orDefault("timeout", o.Timeout, DefaultTimeout); err != nil {
		return o, err
	}
	if o.PollInterval, err = orDefault("poll interval", o.PollInterval, DefaultPollInterval); err != nil {
		return o, err
	}
	if o.ProgressInterval, err = orDefault("progress interval", o.ProgressInterval, DefaultProgressInterval); err != nil {
		return o, err
	}
	if o.Out == nil {
		o.Out = os.Stdout
	}
	return o, nil
}

func orDefault(name string, d, def time.Duration) (time.Duration, error) {
	switch {
	case d < 0:
		return 0, fmt.Errorf("%s must not be negative, got %s", name, d)
	case d == 0:
		return def, nil
	}
	return d, nil
}

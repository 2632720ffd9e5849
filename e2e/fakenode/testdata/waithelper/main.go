// Command waithelper stands in for kube-eip's wait init container in the
// fakenode tests: "waithelper wait -labels FILE -key KEY" blocks until the
// downward-API labels file has KEY, "-fail MSG" prints and exits 1, and
// "-require-env A,B" exits 3 unless those variables are set.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] != "wait" {
		fmt.Println("usage: waithelper wait [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet("wait", flag.ExitOnError)
	labels := fs.String("labels", "", "downward-API labels file to watch")
	key := fs.String("key", "", "label key to wait for")
	fail := fs.String("fail", "", "print this and exit 1")
	requireEnv := fs.String("require-env", "", "comma-separated variables that must be set")
	_ = fs.Parse(os.Args[2:])

	for _, name := range strings.Split(*requireEnv, ",") {
		if name == "" {
			continue
		}
		v := os.Getenv(name)
		if v == "" {
			fmt.Printf("%s is not set\n", name)
			os.Exit(3)
		}
		fmt.Printf("%s=%s\n", name, v)
	}
	if *fail != "" {
		fmt.Println("starting up")
		fmt.Println(*fail)
		os.Exit(1)
	}
	if *labels == "" {
		return
	}
	fmt.Printf("waiting for %s in %s\n", *key, *labels)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for range tick.C {
		if line, ok := find(*labels, *key); ok {
			fmt.Printf("found %s\n", line)
			return
		}
	}
}

func find(path, key string) (string, bool) {
	f, err := os.Open(path)
	if err != nil {
		return "", false
	}
	defer func() { _ = f.Close() }()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if strings.HasPrefix(s.Text(), key+"=") {
			return s.Text(), true
		}
	}
	return "", false
}

package server

import (
	"os"
	"testing"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

func TestMain(m *testing.M) {
	// admission.Webhook and certwatcher log through controller-runtime's
	// global logger, which complains on stderr when nobody ever set it.
	ctrllog.SetLogger(logr.Discard())
	os.Exit(m.Run())
}

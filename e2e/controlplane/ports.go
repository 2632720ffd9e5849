package controlplane

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
)

// ports are the loopback ports of one control plane.
type ports struct {
	EtcdClient        int `json:"etcdClient"`
	EtcdPeer          int `json:"etcdPeer"`
	APIServer         int `json:"apiServer"`
	ControllerManager int `json:"controllerManager"`
	Scheduler         int `json:"scheduler"`
}

// loadOrPickPorts keeps the ports of a persistent state directory across
// restarts, so that kubeconfigs handed out earlier keep working, and picks
// new free ones when there are none yet or one has been taken meanwhile.
func loadOrPickPorts(dir string, ephemeral bool) (ports, error) {
	path := filepath.Join(dir, "ports.json")
	if !ephemeral {
		var saved ports
		data, err := os.ReadFile(path)
		switch {
		case err == nil:
			if json.Unmarshal(data, &saved) == nil && allFree(saved.list()) {
				return saved, nil
			}
		case !errors.Is(err, fs.ErrNotExist):
			return ports{}, fmt.Errorf("reading %s: %w", path, err)
		}
	}
	free, err := freePorts(5)
	if err != nil {
		return ports{}, err
	}
	p := ports{EtcdClient: free[0], EtcdPeer: free[1], APIServer: free[2], ControllerManager: free[3], Scheduler: free[4]}
	data, err := json.Marshal(p)
	if err != nil {
		return ports{}, err
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return ports{}, fmt.Errorf("writing %s: %w", path, err)
	}
	return p, nil
}

func (p ports) list() []int {
	return []int{p.EtcdClient, p.EtcdPeer, p.APIServer, p.ControllerManager, p.Scheduler}
}

func allFree(list []int) bool {
	for _, port := range list {
		if port == 0 {
			return false
		}
		l, err := net.Listen("tcp", hostPort(port))
		if err != nil {
			return false
		}
		_ = l.Close()
	}
	return true
}

// freePorts reserves n distinct loopback ports by binding them all at once,
// then releases them for the components to take.
func freePorts(n int) ([]int, error) {
	listeners := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}()
	list := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("reserving a loopback port: %w", err)
		}
		listeners = append(listeners, l)
		list = append(list, l.Addr().(*net.TCPAddr).Port)
	}
	return list, nil
}

func hostPort(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

package fake

import "slices"

// Calls is how many times action (e.g. "AllocateAddress") was called,
// including calls that failed.
func (f *EC2) Calls(action string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls[action])
}

// Inputs are the inputs of every call of action, oldest first, each a
// shallow copy of the caller's *ec2.<Action>Input.
func (f *EC2) Inputs(action string) []any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls[action])
}

// FailNext makes the next n calls of action fail with code, changing
// nothing, as a throttled or refused request does. Calls queue up behind
// failures already pending.
func (f *EC2) FailNext(action, code string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failNext[action] = append(f.failNext[action], repeat(code, n)...)
}

// FailAfterApply makes the next n successful calls of action take effect
// and still return code: the response was lost, which matters for calls
// that are not idempotent, like AllocateAddress.
func (f *EC2) FailAfterApply(action, code string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failAfter[action] = append(f.failAfter[action], repeat(code, n)...)
}

// SetHook installs a function called with the action before every call; a
// non-nil error is returned to the caller and the call does nothing. The
// hook runs without the fake's lock, so it may use the fake's helpers.
// nil removes it.
func (f *EC2) SetHook(hook func(action string) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hook = hook
}

func repeat(code string, n int) []string {
	return slices.Repeat([]string{code}, max(n, 0))
}

// pop takes the next pending failure of action, if any.
func pop(queue map[string][]string, action string) (string, bool) {
	q := queue[action]
	if len(q) == 0 {
		return "", false
	}
	queue[action] = q[1:]
	return q[0], true
}

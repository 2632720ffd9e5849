package wait

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ParseLabels reads a downward-API file of labels (or annotations) in the
// kubelet's format: one key="value" line per entry, the value quoted with
// Go's %q, lines separated by "\n" and no newline after the last one.
//
// It is strict, because anything else was not written by the kubelet: a
// line without '=', with an empty key or one holding whitespace or quotes,
// with a value that is not a double-quoted Go string, or repeating an
// earlier key is reported in malformed and skipped, and the rest of the
// file still counts. Empty lines are skipped silently.
func ParseLabels(data []byte) (labels map[string]string, malformed []error) {
	labels = map[string]string{}
	for i, line := range strings.Split(string(data), "\n") {
		if line == "" {
			continue
		}
		key, value, err := parseLine(line)
		if err == nil {
			if _, dup := labels[key]; dup {
				err = fmt.Errorf("key %q appears again", key)
			}
		}
		if err != nil {
			malformed = append(malformed, fmt.Errorf("line %d: %w", i+1, err))
			continue
		}
		labels[key] = value
	}
	return labels, malformed
}

func parseLine(line string) (key, value string, err error) {
	key, quoted, ok := strings.Cut(line, "=")
	if !ok {
		return "", "", errors.New(`no "=" between key and value`)
	}
	if key == "" {
		return "", "", errors.New("empty key")
	}
	if strings.ContainsAny(key, "\" \t\r\v\f'`") {
		return "", "", fmt.Errorf("key %q holds whitespace or quotes", key)
	}
	// strconv.Unquote also takes 'c' and `raw`, which %q never writes.
	if !strings.HasPrefix(quoted, `"`) {
		return "", "", fmt.Errorf("value of %q is not double-quoted", key)
	}
	value, err = strconv.Unquote(quoted)
	if err != nil {
		return "", "", fmt.Errorf("value of %q is not a Go-quoted string: %w", key, err)
	}
	return key, value, nil
}

package wait

import (
	"maps"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

func TestParseLabels(t *testing.T) {
	for _, tc := range []struct {
		name      string
		data      string
		want      map[string]string
		malformed []string // substrings of the reported errors, in order
	}{
		{name: "empty file", data: "", want: map[string]string{}},
		{
			name: "kubelet output",
			data: "app=\"web\"\nkube-eip.io/public-ip=\"3.4.5.6\"",
			want: map[string]string{"app": "web", "kube-eip.io/public-ip": "3.4.5.6"},
		},
		{name: "final newline", data: "app=\"web\"\n", want: map[string]string{"app": "web"}},
		{name: "empty value", data: `app=""`, want: map[string]string{"app": ""}},
		{name: "equals in value", data: `a="x=y"`, want: map[string]string{"a": "x=y"}},
		{
			name: "escapes",
			data: `quote="say \"hi\""` + "\n" + `backslash="C:\\dir"` + "\n" + `newline="a\nb\tc"` + "\n" +
				`unicode="caf\u00e9 \U0001F600"` + "\n" + `octal="\101"` + "\n" + `bytes="\xff\x00"`,
			want: map[string]string{
				"quote": `say "hi"`, "backslash": `C:\dir`, "newline": "a\nb\tc",
				"unicode": "café 😀", "octal": "A", "bytes": "\xff\x00",
			},
		},
		{name: "raw utf-8", data: `a="café"`, want: map[string]string{"a": "café"}},
		{
			name:      "no equals",
			data:      "app\nb=\"2\"",
			want:      map[string]string{"b": "2"},
			malformed: []string{`line 1: no "="`},
		},
		{name: "empty key", data: `="v"`, want: map[string]string{}, malformed: []string{"line 1: empty key"}},
		{name: "unquoted", data: `a=v`, want: map[string]string{}, malformed: []string{`value of "a" is not double-quoted`}},
		{name: "single quoted", data: `a='v'`, want: map[string]string{}, malformed: []string{"not double-quoted"}},
		{name: "backquoted", data: "a=`v`", want: map[string]string{}, malformed: []string{"not double-quoted"}},
		{name: "unterminated", data: `a="v`, want: map[string]string{}, malformed: []string{"not a Go-quoted string"}},
		{name: "trailing text", data: `a="v" # x`, want: map[string]string{}, malformed: []string{"not a Go-quoted string"}},
		{name: "bad escape", data: `a="\q"`, want: map[string]string{}, malformed: []string{"not a Go-quoted string"}},
		{name: "carriage return", data: "a=\"v\"\r\nb=\"w\"", want: map[string]string{"b": "w"}, malformed: []string{"line 1:"}},
		{name: "space in key", data: `a b="v"`, want: map[string]string{}, malformed: []string{"whitespace or quotes"}},
		{name: "space around equals", data: `a = "v"`, want: map[string]string{}, malformed: []string{"line 1:"}},
		{
			name:      "duplicate key keeps the first",
			data:      "a=\"1\"\na=\"2\"",
			want:      map[string]string{"a": "1"},
			malformed: []string{`line 2: key "a" appears again`},
		},
		{
			name:      "blank lines skipped, numbering kept",
			data:      "\n\na=\"1\"\n\nbroken",
			want:      map[string]string{"a": "1"},
			malformed: []string{"line 5:"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, malformed := ParseLabels([]byte(tc.data))
			if !maps.Equal(got, tc.want) {
				t.Errorf("labels = %q, want %q", got, tc.want)
			}
			if len(malformed) != len(tc.malformed) {
				t.Fatalf("malformed = %v, want %d errors like %q", malformed, len(tc.malformed), tc.malformed)
			}
			for i, want := range tc.malformed {
				if !strings.Contains(malformed[i].Error(), want) {
					t.Errorf("malformed[%d] = %q, want it to contain %q", i, malformed[i], want)
				}
			}
		})
	}
}

// FuzzParseLabels checks that the parser never panics, that whatever it
// accepts survives a round trip through the kubelet's format, and that any
// valid label key with any value comes back exactly as the kubelet wrote it.
func FuzzParseLabels(f *testing.F) {
	f.Add([]byte("app=\"web\"\nkube-eip.io/public-ip=\"3.4.5.6\""), "kube-eip.io/public-ip", "3.4.5.6")
	f.Add([]byte(`a="\xff\u00e9\"\\"`+"\n=\"\"\nb='c'\nd=`e`"), "example.com/a-b_c.d", "say \"hi\"\n")
	f.Add([]byte("a\n\n=\nb=\"\nc=\"\\\""), "A", "\x00\xff")
	f.Fuzz(func(t *testing.T, data []byte, key, value string) {
		labels, _ := ParseLabels(data)
		again, malformed := ParseLabels([]byte(kubeletFormat(labels)))
		if len(malformed) > 0 || !maps.Equal(again, labels) {
			t.Fatalf("round trip of %q: got %q with %v, want %q", data, again, malformed, labels)
		}

		if len(validation.IsQualifiedName(key)) > 0 {
			return
		}
		want := map[string]string{key: value, "app": "web"}
		got, malformed := ParseLabels([]byte(kubeletFormat(want)))
		if len(malformed) > 0 || !maps.Equal(got, want) {
			t.Fatalf("kubelet output for %q=%q: got %q with %v", key, value, got, malformed)
		}
	})
}

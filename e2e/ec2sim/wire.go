package ec2sim

import (
	"bytes"
	"compress/gzip"
	"encoding/xml"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ec2Namespace is the namespace of every EC2 Query answer.
const ec2Namespace = "http://ec2.amazonaws.com/doc/2016-11-15/"

// respMeta is embedded in every response body; the dispatcher fills it.
type respMeta struct {
	RequestID string `xml:"requestId"`
}

func (m *respMeta) setRequestID(id string) { m.RequestID = id }

type response interface{ setRequestID(string) }

// items renders a list the way EC2 does, as <fooSet><item>…</item></fooSet>,
// keeping the set element even when empty.
type items[T any] struct {
	Item []T `xml:"item"`
}

// returnTrue is the body of actions that only acknowledge.
type returnTrue struct {
	respMeta
	Return bool `xml:"return"`
}

func ack() response { return &returnTrue{Return: true} }

type xmlTag struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

func renderTags(tags map[string]string) []xmlTag {
	out := make([]xmlTag, 0, len(tags))
	for _, k := range sortedKeys(tags) {
		out = append(out, xmlTag{Key: k, Value: tags[k]})
	}
	return out
}

type xmlGroup struct {
	GroupID   string `xml:"groupId"`
	GroupName string `xml:"groupName"`
}

// awsTime is the timestamp format EC2 writes and the SDK parses.
func awsTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func writeResponse(w http.ResponseWriter, r *http.Request, action, requestID string, body response) {
	body.setRequestID(requestID)
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	start := xml.StartElement{Name: xml.Name{Space: ec2Namespace, Local: action + "Response"}}
	if err := xml.NewEncoder(&buf).EncodeElement(body, start); err != nil {
		writeError(w, requestID, errInternal)
		return
	}
	payload := buf.Bytes()
	if len(payload) > singleReadAnswer && acceptsGzip(r) {
		if gz, err := gzipped(payload); err == nil {
			payload = gz
			w.Header().Set("Content-Encoding", "gzip")
		}
	}
	if len(payload) > singleReadAnswer {
		time.Sleep(largeAnswerHold)
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(payload)))
	w.Header().Set("x-amzn-RequestId", requestID)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(payload)
}

// A race between smithy-go and net/http shapes how answers are sent. The
// SDK closes a request's body as soon as the response headers arrive, and
// its body then answers WriteTo with io.EOF; net/http's writeLoop, after
// sending Content-Length bytes, makes one more io.Copy from the body to
// check nothing is left, and takes that io.EOF for a write error: it closes
// the connection. On loopback, where answers come back in microseconds,
// the SDK wins about one call in ten. An answer the client took in one
// read survives (the connection is only not reused); a longer one is cut
// off and the call fails with "use of closed network connection". So
// answers that would not fit one read (net/http's 4 KiB buffer, less the
// headers) are gzipped when the client accepts it, as Go's transport does
// by default, and the few still too long wait a moment so the client's
// writeLoop finishes first.
const (
	singleReadAnswer = 3500
	largeAnswerHold  = 2 * time.Millisecond
)

func acceptsGzip(r *http.Request) bool {
	for _, enc := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		if name, _, _ := strings.Cut(strings.TrimSpace(enc), ";"); name == "gzip" {
			return true
		}
	}
	return false
}

func gzipped(b []byte) ([]byte, error) {
	var out bytes.Buffer
	zw, err := gzip.NewWriterLevel(&out, gzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(b); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// xmlErrorResponse is EC2's error shape, which the SDK's ec2query error
// parser reads as Response>Errors>Error>Code|Message and Response>RequestID.
type xmlErrorResponse struct {
	XMLName   xml.Name `xml:"Response"`
	Code      string   `xml:"Errors>Error>Code"`
	Message   string   `xml:"Errors>Error>Message"`
	RequestID string   `xml:"RequestID"`
}

func writeError(w http.ResponseWriter, requestID string, e *apiError) {
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	// Marshalling three strings cannot fail.
	_ = xml.NewEncoder(&buf).Encode(xmlErrorResponse{Code: e.code, Message: e.message, RequestID: requestID})
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.Header().Set("x-amzn-RequestId", requestID)
	w.WriteHeader(e.status)
	_, _ = w.Write(buf.Bytes())
}

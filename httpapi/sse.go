package httpapi

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"strconv"

	"github.com/nexus-mem/nexus"
)

// appendEvent appends ev in the text/event-stream format. Data is JSON on
// one line; should it hold a line break anyway, each line becomes its own
// data field, which a reader joins back with "\n".
func appendEvent(buf *bytes.Buffer, ev nexus.Event) {
	buf.WriteString("event: ")
	buf.WriteString(ev.Type)
	buf.WriteString("\nid: ")
	buf.WriteString(ev.ID)
	buf.WriteByte('\n')
	data := []byte(ev.Data)
	for {
		i := bytes.IndexAny(data, "\r\n")
		if i < 0 {
			break
		}
		buf.WriteString("data: ")
		buf.Write(data[:i])
		buf.WriteByte('\n')
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
	buf.WriteString("data: ")
	buf.Write(data)
	buf.WriteString("\n\n")
}

// maxEventLine bounds one line of an event stream: a context of the
// largest content the server accepts, escaped as JSON, fits.
const maxEventLine = 16 << 20

// sseItem is what the stream reader yields: an event, or (idOnly) an id
// record that only moves the position.
type sseItem struct {
	ev     nexus.Event
	idOnly bool
}

// sseReader parses a text/event-stream as the HTML standard says: lines
// end with CRLF, LF or CR; a line starting with a colon is a comment; an
// empty line dispatches the event being built; the last event id persists
// across events and is set even by an event without data, when the event
// is dispatched.
type sseReader struct {
	sc     *bufio.Scanner
	lastID string // of the last event dispatched
	idBuf  string // the last id field read
	retry  int    // milliseconds, from the last retry field; 0 if none
	first  bool
	// onLine, if set, is called after each line read (a watchdog).
	onLine func()
}

func newSSEReader(r io.Reader) *sseReader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxEventLine)
	sc.Split(scanSSELines)
	return &sseReader{sc: sc, first: true}
}

// scanSSELines splits at CRLF, LF or CR.
func scanSSELines(data []byte, atEOF bool) (int, []byte, error) {
	i := bytes.IndexAny(data, "\r\n")
	switch {
	case i < 0 && atEOF && len(data) > 0:
		return len(data), data, nil
	case i < 0:
		return 0, nil, nil
	case data[i] == '\n':
		return i + 1, data[:i], nil
	case i+1 < len(data):
		if data[i+1] == '\n' {
			return i + 2, data[:i], nil
		}
		return i + 1, data[:i], nil
	case atEOF:
		return i + 1, data[:i], nil
	}
	return 0, nil, nil // a CR at the end of what was read: an LF may follow
}

// next returns the next event or id record. It returns io.EOF at the end
// of the stream (an event not ended by an empty line is dropped, as the
// standard says), and an invalid error for data that is not JSON.
func (r *sseReader) next() (sseItem, error) {
	var typ string
	var data []byte
	hasData, idSet := false, false
	for r.sc.Scan() {
		if r.onLine != nil {
			r.onLine()
		}
		line := r.sc.Bytes()
		if r.first {
			line = bytes.TrimPrefix(line, []byte("\uFEFF"))
			r.first = false
		}
		if len(line) == 0 {
			// Dispatch: the id counts only now, so an event cut off by
			// a dropped connection is asked for again.
			r.lastID = r.idBuf
			switch {
			case hasData:
				if !json.Valid(data) {
					return sseItem{}, nexus.Errorf(nexus.EInvalid, "event %q has data that is not JSON", clip(r.lastID, 80))
				}
				if typ == "" {
					typ = "message"
				}
				return sseItem{ev: nexus.Event{Type: typ, ID: r.lastID, Data: json.RawMessage(data)}}, nil
			case idSet:
				return sseItem{ev: nexus.Event{ID: r.lastID}, idOnly: true}, nil
			}
			typ, idSet = "", false
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "event":
			typ = string(value)
		case "data":
			if hasData {
				data = append(data, '\n')
			}
			data, hasData = append(data, value...), true
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				r.idBuf, idSet = string(value), true
			}
		case "retry":
			if n, err := strconv.Atoi(string(value)); err == nil && n >= 0 && isDigits(value) {
				r.retry = n
			}
		}
	}
	if err := r.sc.Err(); err != nil {
		return sseItem{}, err
	}
	return sseItem{}, io.EOF
}

func isDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

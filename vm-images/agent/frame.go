package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// Frame types of protocol version 1 (docs/agent-protocol.md).
const (
	typeHello       byte = 0x01
	typeExec        byte = 0x02
	typeStdin       byte = 0x03
	typeStdout      byte = 0x04
	typeStderr      byte = 0x05
	typeExit        byte = 0x06
	typeSignal      byte = 0x07
	typeWindow      byte = 0x08
	typeEngine      byte = 0x09
	typeEngineReady byte = 0x0A
	typePoweroff    byte = 0x0B
	typeError       byte = 0x0C
	typeResize      byte = 0x0D
)

const (
	headerLen  = 9          // length(4) + type(1) + channel(4)
	maxPayload = 1 << 20    // largest payload a frame may carry
	dataChunk  = 64 << 10   // output is sent in chunks of at most this size
	maxQueued  = 256 << 10  // output bytes queued for the writer before the pumps wait
	stdinLimit = maxPayload // the host's STDIN window per channel
)

var typeNames = map[byte]string{
	typeHello: "HELLO", typeExec: "EXEC", typeStdin: "STDIN", typeStdout: "STDOUT",
	typeStderr: "STDERR", typeExit: "EXIT", typeSignal: "SIGNAL", typeWindow: "WINDOW",
	typeEngine: "ENGINE", typeEngineReady: "ENGINE_READY", typePoweroff: "POWEROFF",
	typeError: "ERROR", typeResize: "RESIZE",
}

func typeName(t byte) string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("0x%02X", t)
}

type frame struct {
	typ     byte
	ch      uint32
	payload []byte
}

// errBadFrame marks a framing error: the link cannot be resynchronised.
type errBadFrame struct{ msg string }

func (e *errBadFrame) Error() string { return e.msg }

// readFrame reads one frame. It returns *errBadFrame for a length out of bounds or an unknown
// type, io.EOF at a clean end of stream and io.ErrUnexpectedEOF for a stream cut inside a frame.
func readFrame(r io.Reader) (frame, error) {
	var hdr [headerLen]byte
	if _, err := io.ReadFull(r, hdr[:4]); err != nil {
		return frame{}, err
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	if n < 5 || n > maxPayload+5 {
		return frame{}, &errBadFrame{fmt.Sprintf("bad frame length %d", n)}
	}
	if _, err := io.ReadFull(r, hdr[4:]); err != nil {
		return frame{}, unexpected(err)
	}
	t := hdr[4]
	if _, ok := typeNames[t]; !ok {
		return frame{}, &errBadFrame{fmt.Sprintf("unknown frame type 0x%02X", t)}
	}
	f := frame{typ: t, ch: binary.BigEndian.Uint32(hdr[5:]), payload: make([]byte, n-5)}
	if _, err := io.ReadFull(r, f.payload); err != nil {
		return frame{}, unexpected(err)
	}
	return f, nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// encodeFrame returns the wire bytes of one frame.
func encodeFrame(t byte, ch uint32, payload []byte) []byte {
	b := make([]byte, headerLen+len(payload))
	putHeader(b, t, ch, len(payload))
	copy(b[headerLen:], payload)
	return b
}

func putHeader(b []byte, t byte, ch uint32, payloadLen int) {
	binary.BigEndian.PutUint32(b[0:4], uint32(payloadLen+5))
	b[4] = t
	binary.BigEndian.PutUint32(b[5:9], ch)
}

func encodeJSON(t byte, ch uint32, v interface{}) []byte {
	p, err := json.Marshal(v)
	if err != nil {
		panic(err) // only our own structs and maps are encoded here
	}
	return encodeFrame(t, ch, p)
}

// outQueue serialises frames onto the link: everything goes through one FIFO drained by a single
// writer goroutine, so frames never interleave and a channel's EXIT follows its output. Control
// frames never wait (the frame reader must not block on a slow host); output frames wait while
// more than maxQueued bytes of output are queued, which pushes back on the commands' pipes.
type outQueue struct {
	mu     sync.Mutex
	cond   *sync.Cond
	items  []outItem
	data   int // bytes of output frames in items
	dead   bool
	werr   error
	closed chan struct{} // closed when the writer goroutine has returned
}

type outItem struct {
	b    []byte
	data bool
	done chan struct{} // non-nil for a flush marker
}

var errLinkDead = errors.New("link is closed")

func newOutQueue(w io.Writer, onError func(error)) *outQueue {
	q := &outQueue{closed: make(chan struct{})}
	q.cond = sync.NewCond(&q.mu)
	go q.run(w, onError)
	return q
}

func (q *outQueue) run(w io.Writer, onError func(error)) {
	defer close(q.closed)
	for {
		q.mu.Lock()
		for len(q.items) == 0 && !q.dead {
			q.cond.Wait()
		}
		if q.dead {
			q.releaseLocked()
			q.mu.Unlock()
			return
		}
		it := q.items[0]
		q.items[0] = outItem{}
		q.items = q.items[1:]
		q.mu.Unlock()

		if it.done != nil {
			close(it.done)
			continue
		}
		_, err := w.Write(it.b)
		q.mu.Lock()
		if it.data {
			q.data -= len(it.b)
		}
		if err != nil && !q.dead {
			q.dead, q.werr = true, err
			if onError != nil {
				q.mu.Unlock()
				onError(err)
				q.mu.Lock()
			}
		}
		q.cond.Broadcast()
		q.mu.Unlock()
	}
}

// releaseLocked drops what is queued and wakes flush waiters once the link is dead.
func (q *outQueue) releaseLocked() {
	for _, it := range q.items {
		if it.done != nil {
			close(it.done)
		}
	}
	q.items, q.data = nil, 0
	q.cond.Broadcast()
}

// control queues a control frame (never blocks).
func (q *outQueue) control(b []byte) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.dead {
		return
	}
	q.items = append(q.items, outItem{b: b})
	q.cond.Broadcast()
}

// output queues an output frame, waiting while too much output is queued.
func (q *outQueue) output(b []byte) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.data >= maxQueued && !q.dead {
		q.cond.Wait()
	}
	if q.dead {
		return
	}
	q.items = append(q.items, outItem{b: b, data: true})
	q.data += len(b)
	q.cond.Broadcast()
}

func (q *outQueue) sendJSON(t byte, ch uint32, v interface{}) { q.control(encodeJSON(t, ch, v)) }

func (q *outQueue) sendError(ch uint32, msg string) {
	q.sendJSON(typeError, ch, map[string]string{"message": msg})
}

// flush waits until everything queued before it has been written (a completed Write), or the
// timeout passes (0: no timeout). It reports whether the link is still alive afterwards.
func (q *outQueue) flush(timeout time.Duration) bool {
	done := make(chan struct{})
	q.mu.Lock()
	if q.dead {
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, outItem{done: done})
	q.cond.Broadcast()
	q.mu.Unlock()
	if timeout <= 0 {
		<-done
	} else {
		t := time.NewTimer(timeout)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			return false
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return !q.dead
}

// close stops the writer; anything still queued is dropped and later frames are discarded.
// A Write in progress is not interrupted: close the underlying connection for that.
func (q *outQueue) close() {
	q.mu.Lock()
	if !q.dead {
		q.dead = true
		q.werr = errLinkDead
	}
	q.releaseLocked()
	q.mu.Unlock()
}

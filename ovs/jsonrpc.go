package ovs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// dbConn is a JSON-RPC 1.0 connection to ovsdb-server (RFC 7047, section
// 4): requests are answered by id, several may be in flight (a wait of
// one caller does not hold up another's select), and the server's own echo
// requests are answered. It is netlab's own rather than go-openvswitch's
// client because a transaction's answer says, per operation, what it did
// and why it failed (an insert's uuid, "constraint violation" with its
// details), which that client drops.
type dbConn struct {
	conn net.Conn

	wmu sync.Mutex // one request written at a time

	mu      sync.Mutex
	nextID  uint64
	waiting map[uint64]chan rpcReply
	err     error // why the connection ended; set once
	done    chan struct{}
}

// rpcReply is one answer: its result, or its error object.
type rpcReply struct {
	result json.RawMessage
	err    error
}

// dbRow is a row of a select, in RFC 7047's notation (atoms, ["uuid", U],
// ["set", [...]], ["map", [[k, v], ...]]).
type dbRow = map[string]any

// opResult is what one operation of a transaction did (RFC 7047 5.2).
type opResult = opResultOf[dbRow]

// rawRow is a row of a select with each cell as the server wrote it, for
// readers that parse the cells themselves (observe: ovs-vsctl's JSON has
// the same cells).
type rawRow = map[string]json.RawMessage

// opResultOf is an operation's result with its rows decoded as R.
type opResultOf[R any] struct {
	Rows    []R    `json:"rows"`
	UUID    []any  `json:"uuid"`
	Count   *int   `json:"count"`
	Error   string `json:"error"`
	Details string `json:"details"`
}

// dbError is an error the database reported: a failed operation, or a
// request it refused.
type dbError struct {
	Op      int // index of the failed operation; -1 for the request
	Err     string
	Details string
}

func (e *dbError) Error() string {
	where := "request"
	if e.Op >= 0 {
		where = fmt.Sprintf("operation %d", e.Op+1)
	}
	if e.Details == "" {
		return fmt.Sprintf("ovsdb: %s: %s", where, e.Err)
	}
	return fmt.Sprintf("ovsdb: %s: %s: %s", where, e.Err, e.Details)
}

func dialDB(sock string) (*dbConn, error) {
	c, err := net.Dial("unix", sock)
	if err != nil {
		return nil, err
	}
	d := &dbConn{conn: c, waiting: map[uint64]chan rpcReply{}, done: make(chan struct{})}
	go d.read()
	return d, nil
}

// read hands each answer to its caller and answers the server's echoes,
// until the connection ends.
func (d *dbConn) read() {
	dec := json.NewDecoder(d.conn)
	var err error
	for {
		var m struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
			Result json.RawMessage `json:"result"`
			Error  json.RawMessage `json:"error"`
		}
		if err = dec.Decode(&m); err != nil {
			break
		}
		if m.Method == "echo" {
			b, _ := json.Marshal(map[string]any{"id": m.ID, "result": m.Params, "error": nil})
			d.wmu.Lock()
			_, err = d.conn.Write(b)
			d.wmu.Unlock()
			if err != nil {
				break
			}
			continue
		}
		if m.Method != "" {
			continue // a notification (update, locked): netlab asks for none
		}
		var id uint64
		if json.Unmarshal(m.ID, &id) != nil {
			continue
		}
		r := rpcReply{result: m.Result}
		if len(m.Error) > 0 && string(m.Error) != "null" {
			var e struct {
				Error   string `json:"error"`
				Details string `json:"details"`
			}
			if json.Unmarshal(m.Error, &e) != nil || e.Error == "" {
				e.Error = string(m.Error)
			}
			r.err = &dbError{Op: -1, Err: e.Error, Details: e.Details}
		}
		d.mu.Lock()
		ch := d.waiting[id]
		delete(d.waiting, id)
		d.mu.Unlock()
		if ch != nil {
			ch <- r
		}
	}
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	d.mu.Lock()
	d.err = fmt.Errorf("ovsdb connection: %w", err)
	for id, ch := range d.waiting {
		ch <- rpcReply{err: d.err}
		delete(d.waiting, id)
	}
	d.mu.Unlock()
	close(d.done)
}

// call sends one request and waits for its answer, or ctx.
func (d *dbConn) call(ctx context.Context, method string, params []any) (json.RawMessage, error) {
	ch := make(chan rpcReply, 1)
	d.mu.Lock()
	if d.err != nil {
		d.mu.Unlock()
		return nil, d.err
	}
	d.nextID++
	id := d.nextID
	d.waiting[id] = ch
	d.mu.Unlock()
	b, err := json.Marshal(map[string]any{"method": method, "params": params, "id": id})
	if err == nil {
		d.wmu.Lock()
		_, err = d.conn.Write(b)
		d.wmu.Unlock()
	}
	if err != nil {
		d.mu.Lock()
		delete(d.waiting, id)
		d.mu.Unlock()
		return nil, fmt.Errorf("ovsdb: send %s: %w", method, err)
	}
	select {
	case r := <-ch:
		return r.result, r.err
	case <-ctx.Done():
		d.mu.Lock()
		delete(d.waiting, id)
		d.mu.Unlock()
		return nil, fmt.Errorf("ovsdb: %s: %w", method, ctx.Err())
	}
}

// transactAs runs the operations as one transaction of the database: every
// operation's result, with the rows of selects decoded as R, or the first
// failed operation as a *dbError (the server then commits nothing).
func transactAs[R any](ctx context.Context, d *dbConn, db string, ops []op) ([]opResultOf[R], error) {
	params := make([]any, 0, len(ops)+1)
	params = append(params, db)
	for _, o := range ops {
		params = append(params, map[string]any(o))
	}
	raw, err := d.call(ctx, "transact", params)
	if err != nil {
		return nil, err
	}
	var res []*opResultOf[R]
	if err := json.Unmarshal(raw, &res); err != nil {
		return nil, fmt.Errorf("ovsdb: transact: %w", err)
	}
	out := make([]opResultOf[R], len(res))
	for i, r := range res {
		if r == nil {
			continue // not run: an earlier operation failed
		}
		if r.Error != "" {
			if i >= len(ops) {
				// A result beyond the operations: an error of the
				// commit itself (RFC 7047 5.2, "referential integrity
				// violation").
				i = -1
			}
			return out, &dbError{Op: i, Err: r.Error, Details: r.Details}
		}
		out[i] = *r
	}
	return out, nil
}

func (d *dbConn) echo(ctx context.Context) error {
	_, err := d.call(ctx, "echo", []any{"netlab"})
	return err
}

func (d *dbConn) Close() error {
	err := d.conn.Close()
	<-d.done
	return err
}

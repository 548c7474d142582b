package reflector

import (
	"os"
	"sync"
)

// ChannelDevice is a Device backed by channels, for tests (wireguard-go's
// tuntest.ChannelTUN): what a test sends on Inbound is what Read returns, one
// packet per Read, and every Write appears as a copy on Outbound. After Close,
// Read and Write return os.ErrClosed.
type ChannelDevice struct {
	Inbound  chan []byte // packets the device "receives" (Read returns them)
	Outbound chan []byte // packets written to the device

	closeOnce sync.Once
	closed    chan struct{}
}

// NewChannelDevice returns a ChannelDevice with unbuffered Inbound and a
// buffered Outbound (so a test can send several packets before reading).
func NewChannelDevice() *ChannelDevice {
	return &ChannelDevice{
		Inbound:  make(chan []byte),
		Outbound: make(chan []byte, 64),
		closed:   make(chan struct{}),
	}
}

// Read returns the next packet from Inbound, truncated to len(b) like a TUN
// read into a short buffer.
func (d *ChannelDevice) Read(b []byte) (int, error) {
	select {
	case <-d.closed:
		return 0, os.ErrClosed
	case p := <-d.Inbound:
		return copy(b, p), nil
	}
}

// Write sends a copy of b on Outbound.
func (d *ChannelDevice) Write(b []byte) (int, error) {
	p := append([]byte(nil), b...)
	select {
	case <-d.closed:
		return 0, os.ErrClosed
	case d.Outbound <- p:
		return len(b), nil
	}
}

// Close makes Read and Write fail with os.ErrClosed; it may be called more
// than once.
func (d *ChannelDevice) Close() error {
	d.closeOnce.Do(func() { close(d.closed) })
	return nil
}

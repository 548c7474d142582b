package tundev_test

import (
	"testing"

	"github.com/netlab-dev/netlab/internal/tundev"
)

// A header encodes into 10 bytes and decodes back as it was; short buffers
// are refused, not read past.
func TestVnetHdrRoundTrip(t *testing.T) {
	h := tundev.VnetHdr{Flags: tundev.VnetHdrNeedsCsum, GSOType: tundev.GSOTCPv4 | tundev.GSOECN,
		HdrLen: 66, GSOSize: 1448, CsumStart: 34, CsumOffset: 16}
	b := make([]byte, tundev.VnetHdrLen+4)
	if err := h.Encode(b); err != nil {
		t.Fatal(err)
	}
	if b[0] != tundev.VnetHdrNeedsCsum || b[1] != tundev.GSOTCPv4|tundev.GSOECN || b[10] != 0 {
		t.Errorf("encoded %x", b)
	}
	var got tundev.VnetHdr
	if err := got.Decode(b); err != nil || got != h {
		t.Errorf("decoded %+v, %v; want %+v", got, err, h)
	}
	if err := got.Decode(b[:9]); err == nil {
		t.Error("a 9-byte header decoded")
	}
	if err := h.Encode(b[:9]); err == nil {
		t.Error("a header encoded into 9 bytes")
	}
}

func TestCheckName(t *testing.T) {
	for _, bad := range []string{"", "a-name-longer-than-15", "tun%d"} {
		if tundev.CheckName(bad) == nil {
			t.Errorf("CheckName(%q) accepted", bad)
		}
	}
	for _, good := range []string{"t", "tun0", "fifteen-bytes-x"} {
		if err := tundev.CheckName(good); err != nil {
			t.Errorf("CheckName(%q): %v", good, err)
		}
	}
}

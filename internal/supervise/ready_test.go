package supervise

import (
	"fmt"
	"strings"
	"testing"
)

// The tables below were captured from /proc/net in a namespace where
// `nc -l -p 8080` had accepted a connection from 127.0.0.1, `nc -6 -l -p
// 443` listened, and `nc -u -l -p 53` and `nc -6 -u -l -p 5353` were bound.
const (
	procTCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode                                                     
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3021312 1 00000000dd951cac 100 0 0 10 0                   
   1: 0100007F:1F90 0100007F:8796 01 00000000:00000000 00:00000000 00000000     0        0 3021313 1 00000000fea4fc08 20 0 0 10 -1                   
   2: 0100007F:8796 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 3020768 2 00000000af0375f0 20 0 0 10 -1                   
`
	procTCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:01BB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3021314 1 0000000051141769 100 0 0 10 0
`
	procUDP = `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops            
  668: 00000000:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 3020643 2 00000000970547a6 0       
`
	procUDP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
 5968: 00000000000000000000000000000000:14E9 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 3020642 2 000000008569b6a0 0
`
	// A connected UDP socket (state 01) on 5353 and a TCP socket on 22
	// that is only established, no longer listening (openbsd nc closes its
	// listener once it accepts).
	procUDPConnected = `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  100: 0100007F:14E9 0100007F:0035 01 00000000:00000000 00:00000000 00000000     0        0 3020700 2 0000000000000000 0
`
	procTCPEstablishedOnly = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0016 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 20 0 0 10 -1
`
	procHeaderOnly = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
`
)

func TestSocketOn(t *testing.T) {
	tests := []struct {
		name  string
		table string
		proto string
		port  int
		want  bool
	}{
		{"tcp listener", procTCP, "tcp", 8080, true},
		{"tcp port of an established connection's far end only", procTCP, "tcp", 34710, false},
		{"tcp port nobody uses", procTCP, "tcp", 80, false},
		{"tcp6 listener", procTCP6, "tcp", 443, true},
		{"tcp6 other port", procTCP6, "tcp", 8080, false},
		{"tcp established, not listening", procTCPEstablishedOnly, "tcp", 22, false},
		{"udp bound (state 07)", procUDP, "udp", 53, true},
		{"udp6 bound", procUDP6, "udp", 5353, true},
		{"udp connected (state 01) counts", procUDPConnected, "udp", 5353, true},
		{"udp remote port is not ours", procUDPConnected, "udp", 53, false},
		{"udp other port", procUDP, "udp", 5353, false},
		// The same text read as TCP: a bound UDP socket is not listening.
		{"udp table read as tcp", procUDP, "tcp", 53, false},
		{"header only", procHeaderOnly, "tcp", 8080, false},
		{"empty", "", "udp", 53, false},
		{"no header: the first line is the header", "   0: 00000000:1F90 00000000:0000 0A\n", "tcp", 8080, false},
		{"hex is upper case, four digits", "h\n   0: 00000000:00FF 00000000:0000 0A\n", "tcp", 255, true},
		{"port 65535", "h\n   0: 00000000:FFFF 00000000:0000 0A\n", "tcp", 65535, true},
		{"a longer number ending in the port is not the port", "h\n   0: 00000000:11F90 00000000:0000 0A\n", "tcp", 8080, false},
		{"short line", "h\n   0: 00000000:1F90\n", "udp", 8080, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := socketOn(tt.table, tt.proto, tt.port); got != tt.want {
				t.Errorf("socketOn(%s, %d) = %v, want %v", tt.proto, tt.port, got, tt.want)
			}
		})
	}
}

// FuzzSocketOn: the parser never panics, a TCP listener is also a bound
// socket (UDP's rule accepts any state), and a hit names the port.
func FuzzSocketOn(f *testing.F) {
	for _, table := range []string{procTCP, procTCP6, procUDP, procUDP6, procUDPConnected, procHeaderOnly, "", "\n", "\n:\n"} {
		f.Add(table, 8080)
		f.Add(table, 53)
	}
	f.Fuzz(func(t *testing.T, table string, port int) {
		tcp := socketOn(table, "tcp", port)
		udp := socketOn(table, "udp", port)
		if tcp && !udp {
			t.Errorf("listening on TCP port %d but not bound", port)
		}
		if udp && !strings.Contains(table, fmt.Sprintf(":%04X", port)) {
			t.Errorf("port %d found in a table without :%04X", port, port)
		}
	})
}

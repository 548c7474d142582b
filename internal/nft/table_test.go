package nft

import (
	"errors"
	"testing"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// TestDecodeRawRejectsOtherKinds: an expression of a kind netlab never
// writes fails the rule's decoding, whatever the rule's decoder would say
// of the rest, and every expression is still named.
func TestDecodeRawRejectsOtherKinds(t *testing.T) {
	for name, e := range map[string]expr.Any{
		"rt":                   &expr.Rt{Register: 1, Key: expr.RtTCPMSS},
		"immediate to reg 1":   &expr.Immediate{Register: 1, Data: []byte{1, 2, 3, 4}},
		"snat, not masquerade": &expr.NAT{Type: expr.NATTypeSourceNAT, Family: unix.NFPROTO_IPV4},
	} {
		var raw [][]byte
		for _, x := range []expr.Any{&expr.Counter{}, e, &expr.Verdict{Kind: expr.VerdictDrop}} {
			b, err := expr.Marshal(unix.NFPROTO_INET, x)
			if err != nil {
				t.Fatal(err)
			}
			raw = append(raw, b)
		}
		names, exprs, err := decodeRaw(unix.NFPROTO_INET, raw)
		if !errors.Is(err, errNotOurs) || exprs != nil {
			t.Errorf("%s: decoded %v, err %v; want errNotOurs", name, exprs, err)
		}
		if len(names) != 3 || names[0] != "counter" || names[2] != "immediate" {
			t.Errorf("%s: names %q", name, names)
		}
	}
}

// wire returns exprs as the driver reads them from the kernel: each
// marshalled as in a rule's NFTA_RULE_EXPRESSIONS and decoded by decodeRaw.
func wire(t *testing.T, fam byte, exprs []expr.Any) []expr.Any {
	t.Helper()
	var raw [][]byte
	for _, e := range exprs {
		b, err := expr.Marshal(fam, e)
		if err != nil {
			t.Fatal(err)
		}
		raw = append(raw, b)
	}
	_, out, err := decodeRaw(fam, raw)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

package state

import (
	"math"

	"github.com/netlab-dev/netlab/topology"
)

// Qdisc handles netlab gives the root qdiscs it makes, so it knows them for
// its own and never touches another's: "NL" (0x4e4c) for the tbf of a
// rate, 0x4e4d for netem (the root, or the tbf's child).
const (
	QdiscHandleTBF   uint16 = 0x4e4c
	QdiscHandleNetem uint16 = 0x4e4d
)

// Qdisc is a link's observed root qdisc (and netem child of a tbf).
type Qdisc struct {
	// Ours says the root handle is one of netlab's.
	Ours bool
	// Kind is the root qdisc's kind (tbf, netem, htb, ...); Handle its major
	// handle.
	Kind   string
	Handle uint16
	// Impair is what netlab's qdiscs apply (rate, limit, the netem fields;
	// loss only through netem, which netlab does not use for loss).
	Impair topology.Impair
	// Burst and LimitBytes are the tbf's, for comparison with the plan's.
	Burst, LimitBytes uint32
}

// LossRule is one interface's loss in percent: the plan's set-loss carries
// the rules, and the nftables driver takes them.
type LossRule struct {
	Link    string  `json:"link"`
	Percent float64 `json:"percent"`
}

// LossModulus is what the random number of a loss rule is taken modulo: a
// loss is kept to 0.01 %.
const LossModulus = 10000

// LossThreshold is a loss rule's bound: a packet is dropped when its random
// number modulo LossModulus is below it.
func LossThreshold(percent float64) uint32 {
	return uint32(math.Round(percent * LossModulus / 100))
}

// LossChain is the chain of an interface's loss rule in the lab's netdev
// table.
func LossChain(link string) string { return "loss_" + link }

// LossTable is the lab's observed netdev table of loss rules in a
// namespace: the drop percentage on each interface's egress.
type LossTable struct {
	Loss map[string]float64
	// Foreign says the table holds something netlab did not write; up
	// replaces it.
	Foreign bool
}

// ImpairSupport is what the kernel offers impairments, found by trying
// (tc and nftables in a throwaway namespace), never assumed.
type ImpairSupport struct {
	TBF   bool `json:"tbf"`   // sch_tbf: rate
	Netem bool `json:"netem"` // sch_netem: delay, jitter, duplicate, corrupt, reorder
	// NftEgress says nftables netdev egress chains work (Linux >= 5.16):
	// loss.
	NftEgress bool `json:"nft_egress"`
	// Why holds each missing feature's error, by feature.
	Why map[string]string `json:"why,omitempty"`
}

// AddQdiscNS records a namespace where netlab is about to make qdiscs.
func (j *Journal) AddQdiscNS(ns string) { j.Qdiscs = addName(j.Qdiscs, ns) }

// AddLoss records a namespace about to get the lab's loss table.
func (j *Journal) AddLoss(ns string) { j.Loss = addName(j.Loss, ns) }

// RemoveLoss forgets a namespace whose loss table is gone.
func (j *Journal) RemoveLoss(ns string) { j.Loss = removeName(j.Loss, ns) }

// ImpairKey names an interface in Journal.Impair: "ns/link".
func ImpairKey(ns, link string) string { return ns + "/" + link }

// SetRuntimeImpair records an impairment set by `netlab impair`: it replaces
// the file's for that interface until --reset or down.
func (j *Journal) SetRuntimeImpair(ns, link string, im topology.Impair) {
	if j.Impair == nil {
		j.Impair = map[string]topology.Impair{}
	}
	j.Impair[ImpairKey(ns, link)] = im
}

// ResetRuntimeImpair forgets a runtime impairment: the file's applies again.
func (j *Journal) ResetRuntimeImpair(ns, link string) { delete(j.Impair, ImpairKey(ns, link)) }

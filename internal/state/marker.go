package state

import "strings"

// markerPrefix starts every alias netlab writes. Aliases (IFLA_IFALIAS) survive
// a crash of netlab and are visible to users (`ip link show` prints them).
const markerPrefix = "netlab:"

// OVSLabKey is the external_ids key that marks OVS bridges and ports.
const OVSLabKey = "netlab-lab"

// NamespaceAlias is the alias netlab puts on a namespace's lo to mark the
// namespace as the lab's: "netlab:<lab>".
func NamespaceAlias(lab string) string { return markerPrefix + lab }

// ParseNamespaceAlias returns the lab of a namespace marker.
func ParseNamespaceAlias(alias string) (lab string, ok bool) {
	rest, ok := strings.CutPrefix(alias, markerPrefix)
	if !ok || rest == "" || strings.ContainsAny(rest, ":/") {
		return "", false
	}
	return rest, true
}

// LinkAlias is the alias netlab puts on every link it creates:
// "netlab:<lab>:<ns>/<ifname>".
func LinkAlias(lab, ns, ifname string) string {
	return markerPrefix + lab + ":" + ns + "/" + ifname
}

// ParseLinkAlias splits a link marker.
func ParseLinkAlias(alias string) (lab, ns, ifname string, ok bool) {
	rest, ok := strings.CutPrefix(alias, markerPrefix)
	if !ok {
		return "", "", "", false
	}
	lab, where, ok := strings.Cut(rest, ":")
	if !ok || lab == "" {
		return "", "", "", false
	}
	ns, ifname, ok = strings.Cut(where, "/")
	if !ok || ns == "" || ifname == "" {
		return "", "", "", false
	}
	return lab, ns, ifname, true
}

// FlowCookie is the OpenFlow cookie of the lab's static flows: 56 bits from
// a hash of the lab name, then 0x01. Deleting by cookie (with a full mask)
// touches nothing else: not the learned entries, not a user's own flows.
func FlowCookie(lab string) uint64 { return labCookie(lab) | 0x01 }

// LearnCookie is the cookie the learning-switch preset gives learned entries.
func LearnCookie(lab string) uint64 { return labCookie(lab) | 0x02 }

func labCookie(lab string) uint64 {
	// FNV-1a: stable across versions and machines, no import of crypto.
	h := uint64(14695981039346656037)
	for _, c := range []byte("netlab:" + lab) {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h &^ 0xff
}

// NFTTable is the name of the lab's nftables tables, its marker: one per
// family netlab uses in a namespace (`inet` for NAT, `netdev` for loss),
// "netlab_" + lab with '-' made '_' (nft accepts '-' in a name only
// quoted).
func NFTTable(lab string) string { return "netlab_" + strings.ReplaceAll(lab, "-", "_") }

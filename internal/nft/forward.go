package nft

import (
	"fmt"
	"net/netip"

	"github.com/google/nftables"
)

// ObserveForwardDrops inspects, read-only, the namespace's base chains
// hooked at forward with policy drop (any table of family ip, ip6 or inet,
// including iptables-nft's "filter" FORWARD) and returns one warning per
// chain and lab source prefix of the chain's family, naming the chain and
// the rule a user would add. It never changes anything: netlab does not
// edit chains it does not own.
//
// Equivalent to: `ip netns exec NS nft list chains`.
func ObserveForwardDrops(nsName string, sources []netip.Prefix) ([]string, error) {
	c, err := dial(nsName)
	if err != nil {
		return nil, err
	}
	defer c.close()
	chains, err := c.nft.ListChains()
	if err != nil {
		return nil, fmt.Errorf("ns %s: list chains: %w", nsName, err)
	}
	var warnings []string
	for _, ch := range chains {
		if ch.Table == nil || ch.Hooknum == nil || *ch.Hooknum != *nftables.ChainHookForward ||
			ch.Policy == nil || *ch.Policy != nftables.ChainPolicyDrop {
			continue
		}
		fam := ch.Table.Family
		if fam != nftables.TableFamilyIPv4 && fam != nftables.TableFamilyIPv6 && fam != nftables.TableFamilyINet {
			continue // bridge/netdev forward hooks do not see routed traffic
		}
		for _, src := range sources {
			src = src.Masked()
			is4 := src.Addr().Is4()
			if (fam == nftables.TableFamilyIPv4 && !is4) || (fam == nftables.TableFamilyIPv6 && is4) {
				continue
			}
			_, pl := family(src)
			where := familyName(fam) + " " + ch.Table.Name + " " + ch.Name
			warnings = append(warnings, fmt.Sprintf(
				"table %s chain %s has policy drop: the lab's forwarded traffic from %s will be dropped; "+
					"to allow it: nft insert rule %s %s saddr %s accept "+
					"(and the reply direction: ct state established,related accept)",
				familyName(fam)+" "+ch.Table.Name, ch.Name, src, where, pl, src))
		}
	}
	return warnings, nil
}

package openflow

import (
	"strconv"
	"strings"
)

// LearnSpec is what one learn() action of a flow says about the entries it
// makes: the table they go to and the cookie, priority and timeouts they
// carry (ovs-actions(7): cookie 0, priority 32768 and no timeouts unless
// given). netlab tells the entries a lab's learn() actions made from other
// flows by these.
type LearnSpec struct {
	Table       int
	Cookie      uint64
	Priority    int
	IdleTimeout int
	HardTimeout int
}

// LearnSpecs finds the learn() actions of flows in ovs-ofctl syntax (the
// learning-switch preset's and the user's) and returns their specs, one per
// distinct spec, in order.
func LearnSpecs(flows []string) []LearnSpec {
	var out []LearnSpec
	seen := map[LearnSpec]bool{}
	for _, f := range flows {
		_, actions, ok := strings.Cut(f, "actions=")
		if !ok {
			continue
		}
		for rest := actions; ; {
			i := strings.Index(rest, "learn(")
			if i < 0 {
				break
			}
			args, after := balanced(rest[i+len("learn("):])
			rest = after
			s, ok := parseLearn(args)
			if ok && !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	return out
}

// balanced returns the text up to the parenthesis that closes an opened
// one, and what follows it.
func balanced(s string) (inside, after string) {
	depth := 1
	for i, r := range s {
		switch r {
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return s[:i], s[i+1:]
			}
		}
	}
	return s, ""
}

// parseLearn reads the arguments of learn(...) that say where its entries
// go and how they look; the match and action specs are left alone.
func parseLearn(args string) (LearnSpec, bool) {
	s := LearnSpec{Priority: DefaultPriority}
	depth := 0
	start := 0
	var fields []string
	for i, r := range args {
		switch {
		case r == '(' || r == '[':
			depth++
		case r == ')' || r == ']':
			depth--
		case r == ',' && depth == 0:
			fields = append(fields, args[start:i])
			start = i + 1
		}
	}
	fields = append(fields, args[start:])
	for _, f := range fields {
		k, v, ok := strings.Cut(strings.TrimSpace(f), "=")
		if !ok {
			continue
		}
		var err error
		switch k {
		case "table":
			s.Table, err = strconv.Atoi(v)
		case "cookie":
			s.Cookie, err = strconv.ParseUint(v, 0, 64)
		case "priority":
			s.Priority, err = strconv.Atoi(v)
		case "idle_timeout":
			s.IdleTimeout, err = strconv.Atoi(v)
		case "hard_timeout":
			s.HardTimeout, err = strconv.Atoi(v)
		}
		if err != nil {
			return s, false
		}
	}
	return s, true
}

// DefaultPriority is OFP_DEFAULT_PRIORITY, the priority of a flow (and of a
// learned entry) that names none.
const DefaultPriority = 0x8000

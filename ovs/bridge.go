package ovs

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	goovs "github.com/digitalocean/go-openvswitch/ovs"

	"github.com/netlab-dev/netlab/internal/state"
)

// Values of Bridge datapath_type and fail_mode.
const (
	DatapathSystem = "system" // kernel datapath (needs the openvswitch module)
	DatapathNetdev = "netdev" // userspace datapath

	FailModeStandalone = string(goovs.FailModeStandalone)
	FailModeSecure     = string(goovs.FailModeSecure)
)

// protocols are the OpenFlow versions netlab enables on its bridges; 1.4 is
// needed for `ovs-ofctl --bundle`.
const protocols = "OpenFlow10,OpenFlow13,OpenFlow14"

// maxOFPort is OFPP_MAX, the highest ofport_request OVS accepts.
const maxOFPort = 0xfeff

// BridgeSpec is a bridge netlab wants.
type BridgeSpec struct {
	Name string
	Lab  string
	// Datapath is "system", "netdev" or "" for DefaultDatapath().
	Datapath string
	// FailMode is "secure", "standalone" or "" (OVS's default, standalone, on
	// creation; left as it is on an existing bridge).
	FailMode string
}

// PortSpec is a port netlab wants on a bridge: an existing host interface
// (normally the host end of a veth).
type PortSpec struct {
	Name   string
	OFPort int // ofport_request; 0 lets OVS choose
	Lab    string
	// Type is the Interface type: "" or PortTypeSystem for an AF_PACKET
	// port, PortTypeAFXDPNonPMD or PortTypeAFXDP for AF_XDP,
	// PortTypeInternal for a port whose device Open vSwitch makes.
	Type string
	// VLAN is the Port's vlan_mode, tag and trunks; nil: none.
	VLAN *state.PortVLAN
}

// Interface types netlab uses for veth ports. OVS treats "" as "system".
const (
	PortTypeSystem      = "system"
	PortTypeAFXDPNonPMD = "afxdp-nonpmd"
	PortTypeAFXDP       = "afxdp"
	// PortTypeInternal is a port whose device Open vSwitch makes in the
	// host namespace (a TAP with the userspace datapath).
	PortTypeInternal = "internal"
)

func validPortType(t string) error {
	switch t {
	case "", PortTypeSystem, PortTypeAFXDPNonPMD, PortTypeAFXDP, PortTypeInternal:
		return nil
	}
	return fmt.Errorf("unknown port type %q", t)
}

// snapshot is what one Observe call reads.
type snapshot struct {
	bridges    map[string]*state.Bridge
	portBridge map[string]string // every port, the LOCAL ones too → its bridge
	ifaceTypes []string          // the Open_vSwitch row's iface_types
}

// observeArgs reads the four tables in one ovs-vsctl invocation.
var observeArgs = []string{"--format=json",
	"--", "--columns=_uuid,name,datapath_type,fail_mode,external_ids,ports,controller", "list", "Bridge",
	"--", "--columns=_uuid,name,external_ids,interfaces,tag,trunks,vlan_mode", "list", "Port",
	"--", "--columns=_uuid,name,ofport_request,ofport,type", "list", "Interface",
	"--", "--columns=iface_types", "list", "Open_vSwitch",
	"--", "--columns=_uuid,target,is_connected", "list", "Controller",
}

// Switch is what ObserveSwitch reads: every bridge, and the interface types
// this Open vSwitch supports.
type Switch struct {
	Bridges    map[string]*state.Bridge
	IfaceTypes []string
}

// ObserveSwitch is Observe plus the Open_vSwitch table's iface_types (system,
// internal, afxdp, ...), in the same single ovs-vsctl invocation.
func (c *Client) ObserveSwitch() (Switch, error) {
	s, err := c.observe()
	if err != nil {
		return Switch{}, err
	}
	return Switch{Bridges: s.bridges, IfaceTypes: s.ifaceTypes}, nil
}

// Observe lists every bridge of the instance (netlab's or not) with its
// datapath_type, fail_mode, owner (external_ids:netlab-lab) and ports (their
// owner, ofport_request and ofport). The bridge's LOCAL port is not listed.
// Equivalent to one call of:
//
//	ovs-vsctl --format=json -- --columns=... list Bridge -- --columns=... list Port \
//	    -- --columns=... list Interface
func (c *Client) Observe() (map[string]*state.Bridge, error) {
	s, err := c.observe()
	if err != nil {
		return nil, err
	}
	return s.bridges, nil
}

func (c *Client) observe() (*snapshot, error) {
	if !c.faked {
		s, err := c.observeRPC()
		if err != nil {
			return nil, fmt.Errorf("ovs: observe: %w", err)
		}
		return s, nil
	}
	out, err := c.VSCtl(observeArgs...)
	if err != nil {
		return nil, fmt.Errorf("ovs: observe: %w", err)
	}
	s, err := parseObserve(out)
	if err != nil {
		return nil, fmt.Errorf("ovs: observe: %w", err)
	}
	return s, nil
}

type ifaceRow struct {
	name            string
	ofport, request int
	typ             string
}

type portRow struct {
	name   string
	owner  string
	ifaces []string
	vlan   *state.PortVLAN
}

func parseObserve(out []byte) (*snapshot, error) {
	ts, err := parseTables(out)
	if err != nil {
		return nil, err
	}
	return snapshotFromTables(ts)
}

// snapshotFromTables reads the tables of observeArgs, in that order.
func snapshotFromTables(ts []table) (*snapshot, error) {
	// The Controller table (and the VLAN and controller columns) came
	// later: a reading without them is still one.
	if len(ts) != 4 && len(ts) != 5 {
		return nil, fmt.Errorf("parse ovs-vsctl json: %d tables, want 5", len(ts))
	}
	controllers := map[string]state.Controller{}
	if len(ts) == 5 {
		crows, err := ts[4].rows()
		if err != nil {
			return nil, err
		}
		for _, r := range crows {
			uuid, err := r.str("_uuid")
			if err != nil {
				return nil, err
			}
			var c state.Controller
			if c.Target, err = r.str("target"); err != nil {
				return nil, err
			}
			if c.Connected, err = r.boolean("is_connected"); err != nil {
				return nil, err
			}
			controllers[uuid] = c
		}
	}
	ovsRows, err := ts[3].rows()
	if err != nil {
		return nil, err
	}
	var ifaceTypes []string
	if len(ovsRows) == 1 {
		if ifaceTypes, err = ovsRows[0].strs("iface_types"); err != nil {
			return nil, err
		}
	}
	ifaces := map[string]ifaceRow{}
	irows, err := ts[2].rows()
	if err != nil {
		return nil, err
	}
	for _, r := range irows {
		var ir ifaceRow
		uuid, err := r.str("_uuid")
		if err != nil {
			return nil, err
		}
		if ir.name, err = r.str("name"); err != nil {
			return nil, err
		}
		if ir.request, _, err = r.int("ofport_request"); err != nil {
			return nil, err
		}
		if ir.ofport, _, err = r.int("ofport"); err != nil {
			return nil, err
		}
		if ir.typ, err = r.str("type"); err != nil {
			return nil, err
		}
		ifaces[uuid] = ir
	}
	ports := map[string]portRow{}
	prows, err := ts[1].rows()
	if err != nil {
		return nil, err
	}
	for _, r := range prows {
		var pr portRow
		uuid, err := r.str("_uuid")
		if err != nil {
			return nil, err
		}
		if pr.name, err = r.str("name"); err != nil {
			return nil, err
		}
		ids, err := r.smap("external_ids")
		if err != nil {
			return nil, err
		}
		pr.owner = ids[state.OVSLabKey]
		if pr.ifaces, err = r.strs("interfaces"); err != nil {
			return nil, err
		}
		if pr.vlan, err = portVLAN(r); err != nil {
			return nil, err
		}
		ports[uuid] = pr
	}
	s := &snapshot{bridges: map[string]*state.Bridge{}, portBridge: map[string]string{}, ifaceTypes: ifaceTypes}
	brows, err := ts[0].rows()
	if err != nil {
		return nil, err
	}
	for _, r := range brows {
		b, err := bridgeFromRow(r)
		if err != nil {
			return nil, err
		}
		puuids, err := r.strs("ports")
		if err != nil {
			return nil, err
		}
		if r.has("controller") {
			cuuids, err := r.strs("controller")
			if err != nil {
				return nil, err
			}
			for _, cu := range cuuids {
				if c, ok := controllers[cu]; ok {
					b.Controllers = append(b.Controllers, c)
				}
			}
			slices.SortFunc(b.Controllers, func(x, y state.Controller) int { return strings.Compare(x.Target, y.Target) })
		}
		for _, pu := range puuids {
			pr, ok := ports[pu]
			if !ok {
				continue
			}
			s.portBridge[pr.name] = b.Name
			if pr.name == b.Name {
				continue // the LOCAL port
			}
			p := &state.Port{Name: pr.name, Owner: pr.owner, VLAN: pr.vlan}
			// A bond has several interfaces; report the one named like the
			// port, else the first.
			for i, iu := range pr.ifaces {
				ir, ok := ifaces[iu]
				if ok && (i == 0 || ir.name == pr.name) {
					p.OFPortRequest, p.OFPort, p.Type = ir.request, ir.ofport, ir.typ
				}
			}
			b.Ports[p.Name] = p
		}
		s.bridges[b.Name] = b
	}
	return s, nil
}

// portVLAN reads a Port's tag, trunks and vlan_mode (nil when none is set
// or the reading has no such columns). Open vSwitch's own default for an
// unset vlan_mode is access with a tag and trunk without: the mode is
// filled in the same way.
func portVLAN(r row) (*state.PortVLAN, error) {
	if !r.has("vlan_mode") {
		return nil, nil
	}
	v := &state.PortVLAN{}
	var err error
	if v.Mode, err = r.str("vlan_mode"); err != nil {
		return nil, err
	}
	if v.Tag, _, err = r.int("tag"); err != nil {
		return nil, err
	}
	if v.Trunks, err = r.ints("trunks"); err != nil {
		return nil, err
	}
	slices.Sort(v.Trunks)
	if v.Mode == "" && v.Tag == 0 && len(v.Trunks) == 0 {
		return nil, nil
	}
	if v.Mode == "" {
		v.Mode = "trunk"
		if v.Tag != 0 {
			v.Mode = "access"
		}
	}
	return v, nil
}

// bridgeFromRow reads name, datapath_type, fail_mode and external_ids.
func bridgeFromRow(r row) (*state.Bridge, error) {
	b := &state.Bridge{Type: "ovs", Ports: map[string]*state.Port{}}
	var err error
	if b.Name, err = r.str("name"); err != nil {
		return nil, err
	}
	if b.Datapath, err = r.str("datapath_type"); err != nil {
		return nil, err
	}
	if b.FailMode, err = r.str("fail_mode"); err != nil {
		return nil, err
	}
	ids, err := r.smap("external_ids")
	if err != nil {
		return nil, err
	}
	b.Owner = ids[state.OVSLabKey]
	return b, nil
}

// findBridge reads one bridge row (without ports); nil if it does not exist.
// Equivalent to:
// `ovs-vsctl --format=json --columns=name,datapath_type,fail_mode,external_ids find Bridge name=NAME`.
func (c *Client) findBridge(name string) (*state.Bridge, error) {
	out, err := c.VSCtl("--format=json", "--columns=name,datapath_type,fail_mode,external_ids",
		"find", "Bridge", "name="+name)
	if err != nil {
		return nil, err
	}
	ts, err := parseTables(out)
	if err != nil {
		return nil, err
	}
	if len(ts) != 1 {
		return nil, fmt.Errorf("parse ovs-vsctl json: %d tables, want 1", len(ts))
	}
	rs, err := ts[0].rows()
	if err != nil || len(rs) == 0 {
		return nil, err
	}
	return bridgeFromRow(rs[0])
}

func notOwned(kind, name, owner, lab string) error {
	if owner == "" {
		return fmt.Errorf("%s %s exists without a netlab-lab marker (lab %q): %w", kind, name, lab, ErrNotOwned)
	}
	return fmt.Errorf("%s %s belongs to lab %q, not %q: %w", kind, name, owner, lab, ErrNotOwned)
}

// EnsureBridge creates the bridge, or updates it if it already belongs to
// b.Lab, in one transaction; a bridge of another lab or of nobody is refused
// (ErrNotOwned) and left untouched. Equivalent to:
//
//	ovs-vsctl -- add-br NAME -- set Bridge NAME datapath_type=DP fail_mode=FM \
//	    external_ids:netlab-lab=LAB protocols=OpenFlow10,OpenFlow13,OpenFlow14
//
// A new bridge uses plain add-br, so a bridge someone else creates between the
// ownership check and the transaction makes it fail instead of being
// claimed; an existing one of ours uses --may-exist add-br and only sets the
// datapath_type and fail_mode if they differ (changing either drops the
// bridge's flows). It then waits, bounded by the timeout, for the bridge's
// own interface (the LOCAL tap) to appear in the host namespace.
func (c *Client) EnsureBridge(b BridgeSpec) error {
	if err := validName(b.Name); err != nil {
		return fmt.Errorf("ovs: add bridge: %w", err)
	}
	if b.Lab == "" {
		return fmt.Errorf("ovs: add bridge %s: empty lab", b.Name)
	}
	dp := b.Datapath
	if dp == "" {
		dp = DefaultDatapath()
	}
	if dp != DatapathSystem && dp != DatapathNetdev {
		return fmt.Errorf("ovs: add bridge %s: unknown datapath %q", b.Name, dp)
	}
	if err := validFailMode(b.FailMode); err != nil {
		return fmt.Errorf("ovs: add bridge %s: %w", b.Name, err)
	}
	if !c.faked {
		if err := c.ensureBridgeRPC(b, dp); err != nil {
			return fmt.Errorf("ovs: add bridge %s: %w", b.Name, err)
		}
		if err := waitInterface(b.Name, true, c.timeout); err != nil {
			return fmt.Errorf("ovs: add bridge %s: %w", b.Name, err)
		}
		return nil
	}
	cur, err := c.findBridge(b.Name)
	if err != nil {
		return fmt.Errorf("ovs: add bridge %s: %w", b.Name, err)
	}
	if cur != nil && cur.Owner != b.Lab {
		return fmt.Errorf("ovs: add bridge %s: %w", b.Name, notOwned("bridge", b.Name, cur.Owner, b.Lab))
	}
	if _, err := c.VSCtl(bridgeTxn(b.Name, b.Lab, dp, b.FailMode, cur)...); err != nil {
		return fmt.Errorf("ovs: add bridge %s: %w", b.Name, err)
	}
	if err := waitInterface(b.Name, true, c.timeout); err != nil {
		return fmt.Errorf("ovs: add bridge %s: %w", b.Name, err)
	}
	return nil
}

// bridgeTxn builds EnsureBridge's transaction; cur is the existing bridge or nil.
func bridgeTxn(name, lab, dp, failMode string, cur *state.Bridge) []string {
	args := []string{"--", "add-br", name}
	if cur != nil {
		args = []string{"--", "--may-exist", "add-br", name}
	}
	args = append(args, "--", "set", "Bridge", name)
	if cur == nil || curDatapath(cur) != dp {
		args = append(args, "datapath_type="+dp)
	}
	if failMode != "" && (cur == nil || curFailMode(cur) != failMode) {
		args = append(args, "fail_mode="+failMode)
	}
	return append(args, "external_ids:"+state.OVSLabKey+"="+lab, "protocols="+protocols)
}

func curDatapath(b *state.Bridge) string {
	if b.Datapath == "" {
		return DatapathSystem
	}
	return b.Datapath
}

func curFailMode(b *state.Bridge) string {
	if b.FailMode == "" {
		return FailModeStandalone
	}
	return b.FailMode
}

// SetFailMode sets the bridge's fail_mode ("secure" or "standalone") if it
// differs: changing it clears the bridge's flow tables when no controller is
// configured, so set it before adding flows. Equivalent to:
// `ovs-vsctl get-fail-mode BR` then `ovs-vsctl set-fail-mode BR MODE`.
func (c *Client) SetFailMode(bridge, mode string) error {
	if err := validFailMode(mode); err != nil || mode == "" {
		return fmt.Errorf("ovs: set fail mode of %s: invalid mode %q", bridge, mode)
	}
	if !c.faked {
		if err := c.setFailModeRPC(bridge, mode); err != nil {
			return fmt.Errorf("ovs: set fail mode of %s: %w", bridge, err)
		}
		return nil
	}
	cur, err := c.ovs.VSwitch.GetFailMode(bridge)
	if err != nil {
		return fmt.Errorf("ovs: set fail mode of %s: %w", bridge, err)
	}
	if string(cur) == mode || (cur == "" && mode == FailModeStandalone) {
		return nil
	}
	if err := c.ovs.VSwitch.SetFailMode(bridge, goovs.FailMode(mode)); err != nil {
		return fmt.Errorf("ovs: set fail mode of %s: %w", bridge, err)
	}
	return nil
}

// DeleteBridge deletes the bridge if external_ids:netlab-lab says it is
// lab's; nil if it does not exist, ErrNotOwned if it is someone else's. It
// waits, bounded by the timeout, until ovs-vswitchd has applied it and the
// bridge's interface is gone: StartDeleteBridge and its wait.
// Equivalent to: `ovs-vsctl --if-exists del-br NAME` after the ownership check.
func (c *Client) DeleteBridge(name, lab string) error {
	wait, err := c.StartDeleteBridge(name, lab)
	if err != nil || wait == nil {
		return err
	}
	return wait()
}

// EnsurePorts attaches the ports to the bridge in one transaction, then
// checks that OVS opened each of them with the requested OpenFlow port
// number. The bridge must belong to each port's lab; a port attached to
// another bridge, or on this bridge without the lab's marker, is refused.
// Equivalent to, for each port P:
//
//	ovs-vsctl -- --may-exist add-port BR P -- set Interface P ofport_request=N \
//	    -- set Port P external_ids:netlab-lab=LAB ...
//
// OVS reports a port whose device is missing only as a warning (exit 0) and
// ofport -1; EnsurePorts turns that into an error carrying Interface:error.
func (c *Client) EnsurePorts(bridge string, ports []PortSpec) error {
	finish, err := c.StartEnsurePorts(bridge, ports)
	if err != nil || finish == nil {
		return err
	}
	return finish(false)
}

// StartEnsurePorts is EnsurePorts up to the commit of its (last)
// transaction: finish waits until ovs-vswitchd has applied it and checks
// the ports as EnsurePorts does. Meanwhile ovs-vswitchd opens the ports
// (tens of milliseconds for a hundred), and the caller can go on with what
// does not need them. finish is nil when nothing is left to wait for.
// finish(true) also reads, in the same transaction, the switch as the next
// Observe or ObserveSwitch reads it, which then answers at once if the
// client sent nothing else meanwhile (waitCheckOFPorts).
func (c *Client) StartEnsurePorts(bridge string, ports []PortSpec) (finish func(observe bool) error, err error) {
	if len(ports) == 0 {
		return nil, nil
	}
	seen := map[string]bool{}
	for _, p := range ports {
		if err := validName(p.Name); err != nil {
			return nil, fmt.Errorf("ovs: add ports to %s: %w", bridge, err)
		}
		if seen[p.Name] {
			return nil, fmt.Errorf("ovs: add ports to %s: port %s listed twice", bridge, p.Name)
		}
		seen[p.Name] = true
		if p.Lab == "" {
			return nil, fmt.Errorf("ovs: add port %s to %s: empty lab", p.Name, bridge)
		}
		if p.OFPort < 0 || p.OFPort > maxOFPort {
			return nil, fmt.Errorf("ovs: add port %s to %s: ofport %d out of range 1..%d", p.Name, bridge, p.OFPort, maxOFPort)
		}
		if err := validPortType(p.Type); err != nil {
			return nil, fmt.Errorf("ovs: add port %s to %s: %w", p.Name, bridge, err)
		}
	}
	if !c.faked && len(afxdpChunks(ports)) == 1 && oneLab(ports) {
		if next, err := c.insertPortsRPC(bridge, ports[0].Lab, ports); err == nil {
			return func(observe bool) error { return c.waitCheckOFPorts(next, bridge, ports, observe) }, nil
		}
		// Some of them are there already, or the bridge is not the lab's
		// (or not there): read what is, and ensure, or say why not.
	}
	var s *snapshot
	var uuid string
	if c.faked {
		s, err = c.observe()
	} else {
		names := make([]string, len(ports))
		for i, p := range ports {
			names[i] = p.Name
		}
		s, uuid, err = c.observePortsRPC(bridge, names)
	}
	if err != nil {
		return nil, fmt.Errorf("ovs: add ports to %s: %w", bridge, err)
	}
	br, ok := (*state.Bridge)(nil), false
	if s != nil {
		br, ok = s.bridges[bridge]
	}
	if !ok {
		return nil, fmt.Errorf("ovs: add ports to %s: no such bridge", bridge)
	}
	for _, p := range ports {
		if br.Owner != p.Lab {
			return nil, fmt.Errorf("ovs: add port %s to %s: %w", p.Name, bridge, notOwned("bridge", bridge, br.Owner, p.Lab))
		}
		if on, ok := s.portBridge[p.Name]; ok && on != bridge {
			return nil, fmt.Errorf("ovs: add port %s to %s: port is attached to bridge %s", p.Name, bridge, on)
		}
		if cur, ok := br.Ports[p.Name]; ok && cur.Owner != p.Lab {
			return nil, fmt.Errorf("ovs: add port %s to %s: %w", p.Name, bridge, notOwned("port", p.Name, cur.Owner, p.Lab))
		}
	}
	if c.faked {
		for _, chunk := range afxdpChunks(ports) {
			if _, err := c.VSCtl(portsTxn(bridge, chunk, c.xdpMode)...); err != nil {
				return nil, fmt.Errorf("ovs: add ports to %s: %w", bridge, err)
			}
		}
		return func(bool) error { return c.checkOFPorts(bridge, ports) }, nil
	}
	next, err := c.commitChunks(ports, func(chunk []PortSpec) (int64, error) {
		return c.ensurePortsRPC(bridge, uuid, br, chunk)
	})
	if err != nil {
		return nil, fmt.Errorf("ovs: add ports to %s: %w", bridge, err)
	}
	return func(observe bool) error { return c.waitCheckOFPorts(next, bridge, ports, observe) }, nil
}

// oneLab says whether the ports are all of one lab.
func oneLab(ports []PortSpec) bool {
	for _, p := range ports {
		if p.Lab != ports[0].Lab {
			return false
		}
	}
	return true
}

// commitChunks commits the ports' changes a chunk at a time (afxdpChunks:
// ovs-vswitchd opens AF_XDP ports a few at a time), waiting for each chunk
// but the last to be applied, and returns the configuration that has the
// last: the caller waits for it with the ports' check (waitCheckOFPorts).
func (c *Client) commitChunks(ports []PortSpec, commit func(chunk []PortSpec) (next int64, err error)) (next int64, err error) {
	var prev []PortSpec
	for _, chunk := range afxdpChunks(ports) {
		if prev != nil {
			if err := c.waitConfigured(next, waitAllowance(prev)); err != nil {
				return 0, err
			}
		}
		prev = chunk
		if next, err = commit(chunk); err != nil {
			return 0, err
		}
	}
	return next, nil
}

// portsTxn builds EnsurePorts' transaction; AF_XDP ports get xdpMode.
func portsTxn(bridge string, ports []PortSpec, xdpMode string) []string {
	var args []string
	for _, p := range ports {
		args = append(args, "--", "--may-exist", "add-port", bridge, p.Name)
		var iface []string
		if p.OFPort > 0 {
			iface = append(iface, "ofport_request="+strconv.Itoa(p.OFPort))
		}
		if isAFXDP(p.Type) {
			iface = append(iface, "type="+p.Type, "options:xdp-mode="+xdpMode)
		} else if p.Type == PortTypeSystem || p.Type == PortTypeInternal {
			iface = append(iface, "type="+p.Type)
		}
		if len(iface) > 0 {
			args = append(append(args, "--", "set", "Interface", p.Name), iface...)
		}
		args = append(args, "--", "set", "Port", p.Name, "external_ids:"+state.OVSLabKey+"="+p.Lab)
		if p.VLAN != nil {
			args = append(args, vlanArgs(p.Name, p.VLAN)...)
		}
	}
	return args
}

// vlanArgs are the ovs-vsctl commands that give Port name the VLAN
// setting v (nil: none): `-- set Port P vlan_mode=M tag=T trunks=[A,B]`,
// with `clear` for what v does not set.
func vlanArgs(name string, v *state.PortVLAN) []string {
	if v == nil {
		return []string{"--", "clear", "Port", name, "tag", "trunks", "vlan_mode"}
	}
	var trunks []string
	for _, t := range v.Trunks {
		trunks = append(trunks, strconv.Itoa(t))
	}
	args := []string{"--", "set", "Port", name, "vlan_mode=" + v.Mode, "trunks=[" + strings.Join(trunks, ",") + "]"}
	if v.Tag != 0 {
		return append(args, "tag="+strconv.Itoa(v.Tag))
	}
	return append(args, "--", "clear", "Port", name, "tag")
}

// SetPortVLANs gives the bridge's ports their VLAN settings (PortSpec.VLAN,
// nil clears them) in one transaction. Equivalent to:
//
//	ovs-vsctl -- set Port P1 vlan_mode=access trunks=[] tag=20 -- clear Port P2 tag trunks vlan_mode ...
func (c *Client) SetPortVLANs(bridge string, ports []PortSpec) error {
	if len(ports) == 0 {
		return nil
	}
	var args []string
	for _, p := range ports {
		if err := validName(p.Name); err != nil {
			return fmt.Errorf("ovs: set VLANs on %s: %w", bridge, err)
		}
		args = append(args, vlanArgs(p.Name, p.VLAN)...)
	}
	if _, err := c.VSCtl(args...); err != nil {
		return fmt.Errorf("ovs: set VLANs on %s: %w", bridge, err)
	}
	return nil
}

// SetControllers makes the bridge's OpenFlow controllers exactly targets
// (none: no controller, and the bridge's fail-mode decides). Equivalent
// to: `ovs-vsctl set-controller BR T1 T2...` or `ovs-vsctl del-controller BR`.
func (c *Client) SetControllers(bridge string, targets []string) error {
	if err := validName(bridge); err != nil {
		return fmt.Errorf("ovs: set controllers: %w", err)
	}
	args := []string{"del-controller", bridge}
	if len(targets) > 0 {
		args = append([]string{"set-controller", bridge}, targets...)
	}
	if _, err := c.VSCtl(args...); err != nil {
		return fmt.Errorf("ovs: bridge %s: set controllers %s: %w", bridge, strings.Join(targets, " "), err)
	}
	return nil
}

// PortError is a port Open vSwitch could not open: its Interface got no
// OpenFlow port number, and Reason is the Interface's error (such as an
// AF_XDP socket the kernel refused).
type PortError struct {
	Bridge, Port, Reason string
}

func (e *PortError) Error() string {
	return fmt.Sprintf("ovs: add port %s to %s: %s", e.Port, e.Bridge, e.Reason)
}

// FailedPorts lists the ports an error of EnsurePorts or SetPortTypes says
// Open vSwitch could not open; none when the error is of another kind.
func FailedPorts(err error) []string {
	var out []string
	var walk func(error)
	walk = func(err error) {
		var pe *PortError
		switch e := err.(type) {
		case interface{ Unwrap() []error }:
			for _, inner := range e.Unwrap() {
				walk(inner)
			}
		default:
			if errors.As(err, &pe) {
				out = append(out, pe.Port)
			}
		}
	}
	if err != nil {
		walk(err)
	}
	return out
}

// checkOFPorts reads ofport and error of the ports' interfaces. Equivalent to:
// `ovs-vsctl --format=json --columns=name,ofport,error list Interface P...`.
func (c *Client) checkOFPorts(bridge string, ports []PortSpec) error {
	args := []string{"--format=json", "--columns=name,ofport,error", "list", "Interface"}
	for _, p := range ports {
		args = append(args, p.Name)
	}
	out, err := c.VSCtl(args...)
	if err != nil {
		return fmt.Errorf("ovs: add ports to %s: read ofports: %w", bridge, err)
	}
	ts, err := parseTables(out)
	if err == nil && len(ts) != 1 {
		err = fmt.Errorf("parse ovs-vsctl json: %d tables, want 1", len(ts))
	}
	var rs []row
	if err == nil {
		rs, err = ts[0].rows()
	}
	if err != nil {
		return fmt.Errorf("ovs: add ports to %s: read ofports: %w", bridge, err)
	}
	want := map[string]int{}
	for _, p := range ports {
		want[p.Name] = p.OFPort
	}
	var errs []error
	for _, r := range rs {
		name, err1 := r.str("name")
		ofport, ok, err2 := r.int("ofport")
		msg, err3 := r.str("error")
		if err := errors.Join(err1, err2, err3); err != nil {
			return fmt.Errorf("ovs: add ports to %s: read ofports: %w", bridge, err)
		}
		switch {
		case !ok || ofport < 0:
			if msg == "" {
				msg = "no ofport assigned"
			}
			errs = append(errs, &PortError{Bridge: bridge, Port: name, Reason: msg})
		case want[name] > 0 && ofport != want[name]:
			errs = append(errs, fmt.Errorf("ovs: add port %s to %s: got ofport %d, requested %d (number taken?)", name, bridge, ofport, want[name]))
		}
	}
	return errors.Join(errs...)
}

// SetOFPort sets the OpenFlow port number OVS should give the port's
// interface. Equivalent to: `ovs-vsctl set Interface PORT ofport_request=N`.
func (c *Client) SetOFPort(port string, ofport int) error {
	if ofport < 1 || ofport > maxOFPort {
		return fmt.Errorf("ovs: set ofport of %s: %d out of range 1..%d", port, ofport, maxOFPort)
	}
	if !c.faked {
		if err := c.setOFPortRPC(port, ofport); err != nil {
			return fmt.Errorf("ovs: set ofport of %s: %w", port, err)
		}
		return nil
	}
	if _, err := c.VSCtl("set", "Interface", port, "ofport_request="+strconv.Itoa(ofport)); err != nil {
		return fmt.Errorf("ovs: set ofport of %s: %w", port, err)
	}
	return nil
}

// SetPortTypes changes the Interface type of existing ports in one
// transaction ("" and PortTypeSystem both mean system), then checks, like
// EnsurePorts, that OVS opened each one again with its ofport. OVS closes
// and reopens the device: a port changed to AF_XDP loads an XDP program on
// the veth, one changed back removes it. Equivalent to:
//
//	ovs-vsctl -- set Interface P1 type=T -- set Interface P2 type=T ...
func (c *Client) SetPortTypes(bridge string, ports []PortSpec) error {
	if len(ports) == 0 {
		return nil
	}
	for _, p := range ports {
		if err := validName(p.Name); err != nil {
			return fmt.Errorf("ovs: set port types on %s: %w", bridge, err)
		}
		if err := validPortType(p.Type); err != nil {
			return fmt.Errorf("ovs: set type of port %s on %s: %w", p.Name, bridge, err)
		}
	}
	if !c.faked {
		next, err := c.commitChunks(ports, c.startSetPortTypes)
		if err != nil {
			return fmt.Errorf("ovs: set port types on %s: %w", bridge, err)
		}
		return c.waitCheckOFPorts(next, bridge, ports, false)
	}
	for _, chunk := range afxdpChunks(ports) {
		var args []string
		for _, p := range chunk {
			switch {
			case isAFXDP(p.Type):
				args = append(args, "--", "set", "Interface", p.Name, "type="+p.Type, "options:xdp-mode="+c.xdpMode)
			default:
				args = append(args, "--", "set", "Interface", p.Name, "type="+PortTypeSystem)
			}
		}
		if _, err := c.VSCtl(args...); err != nil {
			return fmt.Errorf("ovs: set port types on %s: %w", bridge, err)
		}
	}
	return c.checkOFPorts(bridge, ports)
}

// DefaultXDPMode is the XDP mode netlab asks for on its AF_XDP ports. They
// are all veths, which have native XDP; OVS's default, best-effort, first
// tries zero-copy and fails, which doubles the set-up time of each port
// (measured: 60 ms per port native, 112 ms best-effort).
const DefaultXDPMode = "native"

// maxAFXDPPerTxn bounds the AF_XDP ports one ovs-vsctl transaction opens:
// ovs-vswitchd opens them one after the other in its main thread, ~60 ms
// each (XDP program load, UMEM pinning), and ovs-vsctl waits for that within
// its timeout.
const maxAFXDPPerTxn = 16

func isAFXDP(t string) bool { return t == PortTypeAFXDP || t == PortTypeAFXDPNonPMD }

// afxdpChunks splits ports, in order, into groups that each hold at most
// maxAFXDPPerTxn AF_XDP ports (system ports cost OVS nothing comparable).
func afxdpChunks(ports []PortSpec) [][]PortSpec {
	var out [][]PortSpec
	var cur []PortSpec
	n := 0
	for _, p := range ports {
		if isAFXDP(p.Type) {
			if n == maxAFXDPPerTxn {
				out, cur, n = append(out, cur), nil, 0
			}
			n++
		}
		cur = append(cur, p)
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// DeletePorts detaches the ports from the bridge in one transaction; ports
// (or the bridge) already gone are fine, a port attached to another bridge
// is an error. Equivalent to:
//
//	ovs-vsctl -- --if-exists del-port BR P1 -- --if-exists del-port BR P2 ...
func (c *Client) DeletePorts(bridge string, names []string) error {
	if len(names) == 0 {
		return nil
	}
	if !c.faked {
		if err := c.deletePortsRPC(bridge, names); err != nil {
			return fmt.Errorf("ovs: delete ports of %s: %w", bridge, err)
		}
		return nil
	}
	var args []string
	for _, n := range names {
		args = append(args, "--", "--if-exists", "del-port", bridge, n)
	}
	if _, err := c.VSCtl(args...); err != nil {
		// del-port insists on the bridge even with --if-exists.
		if strings.Contains(errOut(err), "no bridge named "+bridge) {
			return nil
		}
		return fmt.Errorf("ovs: delete ports of %s: %w", bridge, err)
	}
	return nil
}

// hostInterfaceExists reports whether the host namespace has the interface.
// sysfs shows the namespace of whoever mounted /sys (the host's), whatever
// namespace the calling thread is in. A variable so unit tests can fake it.
var hostInterfaceExists = func(name string) bool {
	_, err := os.Lstat("/sys/class/net/" + name)
	return err == nil
}

// validName accepts names usable both as OVS record names in ovs-vsctl
// arguments and as Linux interface names.
func validName(n string) error {
	if n == "" || len(n) > 15 || n == "." || n == ".." || strings.ContainsAny(n, "/:=,\"' \t\n") {
		return fmt.Errorf("invalid name %q", n)
	}
	return nil
}

func validFailMode(m string) error {
	switch m {
	case "", FailModeSecure, FailModeStandalone:
		return nil
	}
	return fmt.Errorf("unknown fail mode %q", m)
}

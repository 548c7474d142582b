#!/usr/bin/env bash
# Installs netlab and removes it again: the binary, and where AppArmor may
# restrict user namespaces, its AppArmor profile (packaging/apparmor/netlab)
# with the installed binary's path, loaded with apparmor_parser.
#
#   scripts/install.sh install BIN    # make install: BIN is the built binary
#   scripts/install.sh uninstall      # make uninstall
#   scripts/install.sh check [FILE]   # make test: the profile parses
#
# Environment (make passes its variables): BINDIR (default /usr/local/bin),
# DESTDIR (a staging root: files go under it, nothing is loaded or checked
# on this machine), APPARMOR=auto|yes|no (auto: the profile where the
# AppArmor module is active; yes: always, for packages), APPARMOR_DIR
# (default /etc/apparmor.d).
set -euo pipefail
cd "$(dirname "$0")/.."

bindir=${BINDIR:-/usr/local/bin}
destdir=${DESTDIR:-}
apparmor=${APPARMOR:-auto}
aadir=${APPARMOR_DIR:-/etc/apparmor.d}
src=packaging/apparmor/netlab
bin=$bindir/netlab
say() { echo "install: $*"; }
die() { echo "install: $*" >&2; exit 1; }

case $apparmor in auto|yes|no) ;; *) die "APPARMOR=$apparmor: auto, yes or no" ;; esac
case $bindir in /*) ;; *) die "BINDIR=$bindir: an absolute path (the profile names it)" ;; esac

# aa_active: the AppArmor module is active in this kernel.
aa_active() { [[ $(cat /sys/module/apparmor/parameters/enabled 2>/dev/null) == Y ]]; }

# parser_knows_userns: apparmor_parser is AppArmor 4.0 or later, which
# knows the userns rule (3.x: a syntax error).
parser_knows_userns() {
  command -v apparmor_parser >/dev/null || return 1
  local t
  t=$(mktemp)
  printf 'abi <abi/4.0>,\nprofile netlab-probe flags=(unconfined) {\n  userns,\n}\n' >"$t"
  if apparmor_parser -Q -K -T "$t" >/dev/null 2>&1; then rm -f "$t"; return 0; fi
  rm -f "$t"
  return 1
}

# render FILE PATH: the profile FILE with PATH as the binary it attaches to.
# The path goes into the profile unquoted: only plain characters.
render() {
  [[ $2 =~ ^/[A-Za-z0-9._+/-]+$ ]] || die "$2: a path of letters, digits and ._+-/ only, for the profile to name it"
  sed "s#^profile netlab /usr/local/bin/netlab #profile netlab $2 #" "$1"
}

# check FILE: FILE parses with this machine's apparmor_parser. One older
# than AppArmor 4.0 (Debian 12's 3.0.8) knows no userns rule: the profile
# is checked without it (and with the 3.0 ABI), and the rule is checked
# to be there, once.
check() {
  local file=$1 t out
  command -v apparmor_parser >/dev/null || die "apparmor_parser is missing: apt-get install apparmor (scripts/install-deps.sh)"
  [[ $(grep -c '^  userns,$' "$file") == 1 ]] || die "$file: not exactly one userns rule"
  grep -q '^profile netlab /[^ ]* flags=(unconfined) {$' "$file" || die "$file: no line 'profile netlab PATH flags=(unconfined) {'"
  if parser_knows_userns; then
    out=$(apparmor_parser -Q -K -T "$file" 2>&1) || die "$file does not parse: $out"
    say "$file parses ($(apparmor_parser --version | head -1))"
  else
    t=$(mktemp)
    sed -e 's#^abi <abi/4.0>,#abi <abi/3.0>,#' -e '/^  userns,$/d' "$file" >"$t"
    out=$(apparmor_parser -Q -K -T "$t" 2>&1) || { rm -f "$t"; die "$file does not parse: $out"; }
    rm -f "$t"
    say "$file parses without its userns rule ($(apparmor_parser --version | head -1) predates AppArmor 4.0, which has the rule)"
  fi
}

# root_only PATH: PATH and every directory above it are root's and
# writable by nobody else; else says which is not.
root_only() {
  local p=$1 owner mode
  while :; do
    owner=$(stat -Lc %u "$p") mode=$(stat -Lc %a "$p")
    # A sticky directory (/tmp) is refused too: others may make entries.
    if [[ $owner != 0 ]] || (( 8#$mode & 8#022 )); then
      echo "$p (owner uid $owner, mode $mode)"
      return 1
    fi
    [[ $p == / ]] && return 0
    p=$(dirname "$p")
  done
}

install_profile() {
  local profile=$destdir$aadir/netlab why
  if [[ $apparmor == no ]]; then say "APPARMOR=no: no AppArmor profile"; return; fi
  if [[ $apparmor == auto ]] && ! aa_active; then
    say "AppArmor is not active here: no profile needed (APPARMOR=yes installs it anyway)"
    return
  fi
  if [[ -z $destdir ]]; then
    if ! why=$(root_only "$bin"); then
      echo "install: not installing the AppArmor profile: $why may be changed by others, and whoever can replace $bin would get user namespaces through it; install to a directory of root's (PREFIX=/usr/local)" >&2
      return 1
    fi
  fi
  if ! parser_knows_userns; then
    if [[ $apparmor == auto ]]; then
      say "AppArmor here predates user namespace rules (AppArmor 4.0): it restricts none, no profile needed"
      return
    fi
    say "apparmor_parser here predates AppArmor 4.0: $profile installed unchecked"
  fi
  mkdir -p "$(dirname "$profile")"
  render "$src" "$bin" >"$profile.tmp"
  chmod 0644 "$profile.tmp"
  mv "$profile.tmp" "$profile"
  if [[ -n $destdir ]] || ! aa_active; then
    say "AppArmor profile $profile for $bin (not loaded here)"
    return
  fi
  [[ $(id -u) == 0 ]] || die "loading the AppArmor profile needs root: sudo make install"
  apparmor_parser -r -K "$profile" || die "apparmor_parser could not load $profile"
  say "AppArmor profile $profile for $bin loaded: netlab makes sandboxes under kernel.apparmor_restrict_unprivileged_userns=1"
}

uninstall_profile() {
  local profile=$destdir$aadir/netlab
  [[ -e $profile ]] || return 0
  grep -q '^profile netlab ' "$profile" || die "$profile is not netlab's profile: left alone"
  if [[ -z $destdir ]] && aa_active && command -v apparmor_parser >/dev/null; then
    [[ $(id -u) == 0 ]] || die "unloading the AppArmor profile needs root: sudo make uninstall"
    # Unloaded first: a loaded profile with no file would stay until reboot.
    if grep -q '^netlab ' /sys/kernel/security/apparmor/profiles 2>/dev/null; then
      apparmor_parser -R "$profile" || die "apparmor_parser could not unload $profile"
      say "AppArmor profile netlab unloaded"
    fi
  fi
  rm -f "$profile"
  say "removed $profile"
}

case ${1:-} in
install)
  [[ $# == 2 && -f $2 ]] || die "usage: scripts/install.sh install BIN (a built netlab)"
  install -d "$destdir$bindir"
  install -m 0755 "$2" "$destdir$bin"
  say "$destdir$bin"
  install_profile
  ;;
uninstall)
  uninstall_profile
  if [[ -e $destdir$bin ]]; then
    rm -f "$destdir$bin"
    say "removed $destdir$bin"
  fi
  ;;
check)
  check "${2:-$src}"
  [[ $# == 1 ]] || exit 0
  # The profile as make install writes it for another place parses too.
  t=$(mktemp)
  render "$src" /opt/netlab-check/bin/netlab >"$t"
  grep -q '^profile netlab /opt/netlab-check/bin/netlab flags=(unconfined) {$' "$t" || die "the profile's path was not replaced"
  check "$t" >/dev/null
  rm -f "$t"
  ;;
*)
  die "usage: scripts/install.sh install BIN | uninstall | check [FILE]"
  ;;
esac

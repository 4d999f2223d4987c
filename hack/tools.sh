#!/usr/bin/env bash
# Installs the external tools the tests need, pinned, into a cache that
# survives between runs. Prints the bin directory to put in INFERCAST_TOOLS_BIN.
#   Debian packages: prometheus + promtool, alertmanager's amtool.
#   Go modules:      helm, kubeconform, ghz (built with go install, cached).
set -euo pipefail

PROMETHEUS_DEB=2.42.0+ds-5+deb12u1
ALERTMANAGER_DEB=0.25.0-1+b4
HELM=v3.22.0
KUBECONFORM=v0.8.0
GHZ=v0.93.0

cache=${INFERCAST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/infercast}
bin=$cache/tools/bin
mkdir -p "$bin"
log() { echo "tools: $*" >&2; }

# apt_install PKG=VERSION...: the pinned version, or the candidate when the
# archive no longer serves the pin (said loudly, never silently).
apt_install() {
	local want=() p
	for p in "$@"; do
		dpkg-query -W -f='${Version}' "${p%%=*}" 2>/dev/null | grep -qx "${p#*=}" || want+=("$p")
	done
	[ ${#want[@]} -eq 0 ] && return 0
	command -v apt-get >/dev/null || { log "apt-get missing: cannot install ${want[*]}"; return 1; }
	local sudo=; [ "$(id -u)" -eq 0 ] || sudo=sudo
	log "apt-get install ${want[*]}"
	$sudo apt-get update -qq >&2
	if ! DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${want[@]}" >&2; then
		log "pinned versions unavailable, installing candidates of: ${want[*]%%=*}"
		DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${want[@]%%=*}" >&2
	fi
}

# go_tool NAME MODULE/PATH VERSION: go install into the cache, once per version.
go_tool() {
	local name=$1 pkg=$2 version=$3 stamp=$bin/.$1.version
	if [ -x "$bin/$name" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$version" ]; then return 0; fi
	log "go install $pkg@$version"
	GOBIN=$bin GOFLAGS=-mod=mod go install "$pkg@$version" >&2
	echo "$version" >"$stamp"
}

apt_install "prometheus=$PROMETHEUS_DEB" "prometheus-alertmanager=$ALERTMANAGER_DEB"
for t in prometheus promtool amtool; do ln -sf "$(command -v $t)" "$bin/$t"; done

go_tool helm helm.sh/helm/v3/cmd/helm "$HELM"
go_tool kubeconform github.com/yannh/kubeconform/cmd/kubeconform "$KUBECONFORM"
go_tool ghz github.com/bojand/ghz/cmd/ghz "$GHZ"

echo "$bin"

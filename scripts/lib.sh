# Shared by scripts/*.sh: finding Pythons, making virtualenvs, starting throwaway services.
# Every service binds to a unix socket in a temp dir or to loopback, and is stopped by its
# stop_* function (the callers install an EXIT trap).

step() { printf '\n==> %s\n' "$*"; }

# find_python 3.12 -> a working interpreter path, or fail with what to install.
find_python() {
  local want=$1 candidate
  for candidate in "python$want" /root/.pyenv/versions/"$want".*/bin/python"$want" \
                   /usr/local/bin/python"$want" /usr/bin/python"$want"; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import venv' >/dev/null 2>&1; then
      command -v "$candidate"; return 0
    fi
  done
  echo "Python $want not found: install it (pyenv install $want, or apt-get install python$want-venv)" >&2
  return 1
}

# ensure_venv DIR PYTHON_VERSION REQUIREMENT... : a virtualenv with the project (editable) and
# its test extras; reinstalled only when the requirements change.
ensure_venv() {
  local dir=$1 version=$2; shift 2
  local stamp="$dir/.requirements" wanted
  wanted="$version $* $(sha1sum pyproject.toml | cut -c1-12)"
  if [[ -f $stamp && $(cat "$stamp") == "$wanted" ]]; then return 0; fi
  step "virtualenv $dir (Python $version: $*)"
  # The matrix environments are rebuilt from scratch so nothing stale (another driver) stays;
  # .venv, the development one, is upgraded in place.
  [[ $dir != .venv ]] && rm -rf "$dir"
  if [[ ! -x $dir/bin/python ]]; then
    local python; python=$(find_python "$version")
    "$python" -m venv "$dir"
    "$dir/bin/pip" install -q --upgrade pip >/dev/null
  fi
  local extras="test"
  [[ $dir == .venv ]] && extras="test,lint,bench"
  if ! "$dir/bin/pip" install -q -e ".[$extras]" "$@" >"$dir/.pip.log" 2>&1; then
    cat "$dir/.pip.log"; echo "pip install failed in $dir" >&2; return 1
  fi
  echo "$wanted" >"$stamp"
}

# .venv, the development environment (Python 3.11, Django 5.2, psycopg 3; with the lint and
# bench extras): one definition for `make venv`, test.sh, demo.sh and bench.sh.
ensure_dev_venv() {
  ensure_venv .venv 3.11 "Django>=5.2,<5.3" "psycopg[binary]>=3.1"
}

# PostgreSQL in a temp dir on a unix socket. Exports PGHOST/PGUSER/PGDATABASE.
# `start_postgres` turns fsync and full-page writes off (right for tests: nothing to keep);
# `start_postgres durable` keeps the server's default durability (what benchmarks need).
PG_DIR=""
start_postgres() {
  local durability="-c fsync=off -c full_page_writes=off" label=""
  if [[ ${1:-} == durable ]]; then durability="" label=" (default durability)"; fi
  local bin; bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [[ -z $bin ]]; then
    step "installing PostgreSQL (Debian package)"
    apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  fi
  PG_DIR=$(mktemp -d /tmp/data-encryption-pg.XXXXXX)
  local run=()
  if [[ $(id -u) == 0 ]]; then  # postgres refuses to run as root
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown postgres "$PG_DIR"
    run=(runuser -u postgres --)
  fi
  step "PostgreSQL $("$bin/postgres" --version | awk '{print $3}')$label on a unix socket in $PG_DIR"
  "${run[@]}" "$bin/initdb" -D "$PG_DIR/data" -A trust -U postgres >/dev/null
  "${run[@]}" "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w \
    -o "-k $PG_DIR -c listen_addresses='' $durability" start >/dev/null
  export PGHOST=$PG_DIR PGUSER=postgres PGDATABASE=postgres
  PG_BIN=$bin; PG_RUN=("${run[@]}")
}

stop_postgres() {
  [[ -n $PG_DIR && -d $PG_DIR ]] || return 0
  "${PG_RUN[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$PG_DIR"
  PG_DIR=""
}

# Redis on loopback, on a free port, for the Celery tests. Exports DATA_ENCRYPTION_TEST_REDIS_URL.
REDIS_DIR=""
start_redis() {
  if ! command -v redis-server >/dev/null 2>&1; then
    step "installing redis-server (Debian package)"
    apt-get update -qq >/dev/null && apt-get install -y -qq redis-server >/dev/null
  fi
  REDIS_DIR=$(mktemp -d /tmp/data-encryption-redis.XXXXXX)
  local port
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  redis-server --bind 127.0.0.1 --port "$port" --dir "$REDIS_DIR" --save "" --appendonly no \
    --daemonize yes --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log" >/dev/null
  for _ in $(seq 50); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  step "Redis $(redis-server --version | awk '{print $3}' | cut -d= -f2) on 127.0.0.1:$port"
  export DATA_ENCRYPTION_TEST_REDIS_URL="redis://127.0.0.1:$port/0"
}

stop_redis() {
  [[ -n $REDIS_DIR && -d $REDIS_DIR ]] || return 0
  if [[ -f $REDIS_DIR/redis.pid ]]; then
    kill "$(cat "$REDIS_DIR/redis.pid")" 2>/dev/null || true
  fi
  rm -rf "$REDIS_DIR"
  REDIS_DIR=""
}

# moto's KMS server on loopback, two of them on free ports, for the AWS KMS provider's tests:
# one open, one whose IAM auth the credential tests switch on (POST /moto-api/reset-auth).
# Needs .venv (ensure_dev_venv) for moto_server. Exports DATA_ENCRYPTION_TEST_KMS_URL,
# DATA_ENCRYPTION_TEST_KMS_AUTH_URL and dummy AWS credentials, and points boto3 at empty config
# files with the instance metadata service off, so no developer's ~/.aws or a real AWS is used.
MOTO_DIR=""
MOTO_PIDS=()
start_moto() {
  MOTO_DIR=$(mktemp -d /tmp/data-encryption-moto.XXXXXX)
  local name port urls=()
  for name in open auth; do
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    # The recorder (call counting) writes its file into the temp dir, not the working directory.
    MOTO_RECORDER_FILEPATH="$MOTO_DIR/recording-$name.jsonl" \
      .venv/bin/moto_server -H 127.0.0.1 -p "$port" >"$MOTO_DIR/$name.log" 2>&1 &
    MOTO_PIDS+=($!)
    urls+=("http://127.0.0.1:$port")
  done
  local url
  for url in "${urls[@]}"; do
    if ! python3 - "$url" <<'PY'
import sys, time, urllib.request
deadline = time.monotonic() + 60
while True:
    try:
        urllib.request.urlopen(sys.argv[1] + "/moto-api/data.json", timeout=1).read()
        break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit(f"moto_server at {sys.argv[1]} did not answer within 60 s")
        time.sleep(0.2)
PY
    then cat "$MOTO_DIR"/*.log; return 1; fi
  done
  step "moto $(.venv/bin/python -c 'import moto; print(moto.__version__)') (KMS) on ${urls[0]} and ${urls[1]} (auth)"
  : >"$MOTO_DIR/aws-config"; : >"$MOTO_DIR/aws-credentials"
  export DATA_ENCRYPTION_TEST_KMS_URL=${urls[0]} DATA_ENCRYPTION_TEST_KMS_AUTH_URL=${urls[1]}
  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1
  export AWS_CONFIG_FILE=$MOTO_DIR/aws-config AWS_SHARED_CREDENTIALS_FILE=$MOTO_DIR/aws-credentials
  export AWS_EC2_METADATA_DISABLED=true
  unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_ENDPOINT_URL_KMS
}

stop_moto() {
  local pid
  for pid in "${MOTO_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${MOTO_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  MOTO_PIDS=()
  [[ -n $MOTO_DIR && -d $MOTO_DIR ]] && rm -rf "$MOTO_DIR"
  MOTO_DIR=""
}

# SoftHSM2 (a PKCS#11 token in files) in a temp dir, with one token for the PKCS#11 master-key
# tests. Exports SOFTHSM2_CONF and DATA_ENCRYPTION_TEST_PKCS11_{MODULE,TOKEN,PIN}; the PIN is
# random per run and never printed.
SOFTHSM_DIR=""
start_softhsm() {
  local module=/usr/lib/softhsm/libsofthsm2.so
  if [[ ! -f $module ]] || ! command -v softhsm2-util >/dev/null 2>&1; then
    step "installing softhsm2 (Debian package)"
    apt-get update -qq >/dev/null && apt-get install -y -qq softhsm2 >/dev/null
  fi
  SOFTHSM_DIR=$(mktemp -d /tmp/data-encryption-softhsm.XXXXXX)
  mkdir "$SOFTHSM_DIR/tokens"
  # reset_on_fork: a forked child starts with a fresh library, as with a real HSM (whose
  # sessions do not survive a fork), so the tests prove the provider starts over in a child.
  cat >"$SOFTHSM_DIR/softhsm2.conf" <<CONF
directories.tokendir = $SOFTHSM_DIR/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
library.reset_on_fork = true
CONF
  export SOFTHSM2_CONF=$SOFTHSM_DIR/softhsm2.conf
  local pin so_pin label=data-encryption-test
  pin=$(python3 -c 'import secrets; print(secrets.token_hex(8))')
  so_pin=$(python3 -c 'import secrets; print(secrets.token_hex(8))')
  softhsm2-util --init-token --free --label "$label" --pin "$pin" --so-pin "$so_pin" >/dev/null
  step "SoftHSM $(softhsm2-util --version) token '$label' in $SOFTHSM_DIR"
  export DATA_ENCRYPTION_TEST_PKCS11_MODULE=$module
  export DATA_ENCRYPTION_TEST_PKCS11_TOKEN=$label
  export DATA_ENCRYPTION_TEST_PKCS11_PIN=$pin
}

stop_softhsm() {
  [[ -n $SOFTHSM_DIR && -d $SOFTHSM_DIR ]] || return 0
  rm -rf "$SOFTHSM_DIR"
  SOFTHSM_DIR=""
}

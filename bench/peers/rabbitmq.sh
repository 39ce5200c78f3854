#!/usr/bin/env bash
# A private RabbitMQ 3.10 node for the side-by-side benchmark (redrive_loadgen --system
# rabbitmq-classic | rabbitmq-quorum). Everything the node owns lives under DIR: its data
# (mnesia, quorum logs), logs, config, enabled-plugins file, Erlang cookie and its own epmd. It
# listens on 127.0.0.1 only, on free ports chosen at the first start and reused afterwards. The
# Debian system service (rabbitmq@<host>, /var/lib/rabbitmq) is never touched.
#
#   rabbitmq.sh start DIR               start (or restart on the same data); returns when the
#                                       node accepts AMQP connections; prints the AMQP port
#   rabbitmq.sh stop DIR                stop the node and its epmd; returns once they exited
#   rabbitmq.sh pids DIR                PIDs of beam.smp, its children (erl_child_setup,
#                                       inet_gethost) and the private epmd, one a line
#   rabbitmq.sh amqp-port DIR           the AMQP port (also in DIR/amqp.port)
#   rabbitmq.sh shovel-move DIR SRC DST move every message of queue SRC to queue DST with a
#                                       dynamic shovel; prints the seconds it took
#   rabbitmq.sh ctl DIR ARGS...         rabbitmqctl against the node (for inspection)
#
# Configuration (DIR/rabbitmq.conf, written at every start):
#   - one AMQP listener on 127.0.0.1:<port>; Erlang distribution, epmd and the CLI tools'
#     distribution ports bound to 127.0.0.1 as well; no management or other plugin listeners.
#   - guest/guest (the default user), allowed from loopback only (loopback_users.guest = true,
#     RabbitMQ's default): the load generator connects from 127.0.0.1.
#   - plugins: rabbitmq_shovel only (for shovel-move; it opens no port).
#   - memory and disk alarms are RabbitMQ's defaults: vm_memory_high_watermark.relative = 0.4
#     (publishers are blocked above 40% of RAM) and disk_free_limit.absolute = 50MB. They are
#     left alone on purpose: the benchmark compares stock durability settings.
#
# Runs as root (the CI norm) or any user: this calls the versioned scripts under
# /usr/lib/rabbitmq/lib directly, because Debian's /usr/sbin wrappers `su` to the rabbitmq user
# and cd into /var/lib/rabbitmq (the system node's home). RabbitMQ itself runs fine as root.
#
# Environment: RABBITMQ_START_TIMEOUT (seconds, default 600: a node
# recovering 1,000,000 persistent messages on a busy machine takes minutes), RABBITMQ_STOP_TIMEOUT (default
# 60), SHOVEL_TIMEOUT (default 1800).
set -euo pipefail

RMQ_SBIN=""
for d in /usr/lib/rabbitmq/lib/rabbitmq_server-3.*/sbin; do
  [ -x "$d/rabbitmq-server" ] && RMQ_SBIN="$d"
done
NODE_NAME="redrive-bench@localhost"
START_TIMEOUT="${RABBITMQ_START_TIMEOUT:-600}"
STOP_TIMEOUT="${RABBITMQ_STOP_TIMEOUT:-60}"
SHOVEL_TIMEOUT="${SHOVEL_TIMEOUT:-1800}"

die() {
  echo "rabbitmq.sh: $*" >&2
  exit 1
}

usage() {
  sed -n '/^#   rabbitmq.sh start/,/^#   rabbitmq.sh ctl/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

if [ -z "$RMQ_SBIN" ]; then
  die "RabbitMQ 3.x is not installed (no /usr/lib/rabbitmq/lib/rabbitmq_server-3.*); run scripts/deps.sh"
fi

# ------------------------------------------------------------------ ports

port_free() {
  [ -z "$(ss -Htln "sport = :$1" 2>/dev/null)" ]
}

# Picks BASE so that BASE (AMQP), BASE+1 (distribution), BASE+2 (epmd) and BASE+3..BASE+13
# (rabbitmqctl's own distribution listener) are all free.
pick_ports() {
  local base i ok
  for _ in $(seq 1 200); do
    # Below Linux's ephemeral range (32768-60999), where outgoing connections take theirs.
    base=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
    ok=1
    for i in $(seq 0 13); do
      port_free $((base + i)) || { ok=0; break; }
    done
    if [ "$ok" = 1 ]; then
      echo "$base"
      return 0
    fi
  done
  die "no free block of 14 TCP ports found on 127.0.0.1"
}

# ------------------------------------------------------------------ environment

# Sets every variable the RabbitMQ scripts read, all pointing into $DIR. REQUIRES: DIR/ports.
load_env() {
  local base
  base="$(cat "$DIR/ports")"
  AMQP_PORT=$base
  DIST_PORT=$((base + 1))
  EPMD_PORT=$((base + 2))
  export HOME="$DIR/home"
  export RABBITMQ_NODENAME="$NODE_NAME"
  export RABBITMQ_USE_LONGNAME=false
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT=$AMQP_PORT
  export RABBITMQ_DIST_PORT=$DIST_PORT
  export RABBITMQ_CTL_DIST_PORT_MIN=$((base + 3))
  export RABBITMQ_CTL_DIST_PORT_MAX=$((base + 13))
  export ERL_EPMD_PORT=$EPMD_PORT
  export ERL_EPMD_ADDRESS=127.0.0.1
  export RABBITMQ_CONF_ENV_FILE="$DIR/rabbitmq-env.conf"
  export RABBITMQ_CONFIG_FILE="$DIR/rabbitmq.conf"
  export RABBITMQ_ADVANCED_CONFIG_FILE="$DIR/advanced.config"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$DIR/enabled_plugins"
  export RABBITMQ_MNESIA_BASE="$DIR/mnesia"
  export RABBITMQ_LOG_BASE="$DIR/log"
  export RABBITMQ_PID_FILE="$DIR/beam.pid"
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  export RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  # The package's rabbitmq-env.conf and the system node's cookie stay out of the picture.
  unset RABBITMQ_ENV_LOADED RABBITMQ_SCRIPTS_DIR RABBITMQ_HOME
}

ctl() {
  "$RMQ_SBIN/rabbitmqctl" -n "$NODE_NAME" "$@"
}

write_config() {
  mkdir -p "$DIR/home" "$DIR/mnesia" "$DIR/log"
  if [ ! -s "$DIR/home/.erlang.cookie" ]; then
    (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DIR/home/.erlang.cookie")
  fi
  chmod 400 "$DIR/home/.erlang.cookie"
  : >"$DIR/rabbitmq-env.conf"
  echo '[rabbitmq_shovel].' >"$DIR/enabled_plugins"
  echo '[].' >"$DIR/advanced.config"
  cat >"$DIR/rabbitmq.conf" <<EOF
# Written by bench/peers/rabbitmq.sh; rewritten at every start.
listeners.tcp.1 = 127.0.0.1:$AMQP_PORT
loopback_users.guest = true
# RabbitMQ's defaults, stated for the record:
#   vm_memory_high_watermark.relative = 0.4
#   disk_free_limit.absolute = 50MB
log.file.level = info
log.console = false
EOF
}

# Makes $DIR absolute; fails when it does not exist.
absolute_dir() {
  local abs
  abs="$(cd "$DIR" 2>/dev/null && pwd)" || die "no such directory: $DIR"
  DIR="$abs"
}

# ------------------------------------------------------------------ process helpers

alive() {
  [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null
}

# The PID stored in file $1 if that process is alive and its command line contains $2.
live_pid() {
  local pid
  [ -s "$1" ] || return 1
  pid="$(cat "$1")"
  alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$2" || return 1
  echo "$pid"
}

beam_pid() { live_pid "$DIR/beam.pid" beam; }
epmd_pid() { live_pid "$DIR/epmd.pid" epmd; }

descendants() {
  local child
  for child in $(pgrep -P "$1" 2>/dev/null || true); do
    echo "$child"
    descendants "$child"
  done
}

wait_gone() {  # PID SECONDS
  local deadline=$((SECONDS + $2))
  while alive "$1"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

start_epmd() {
  if epmd_pid >/dev/null; then return 0; fi
  port_free "$EPMD_PORT" || die "epmd port $EPMD_PORT on 127.0.0.1 is taken by another process"
  setsid epmd -port "$EPMD_PORT" -address 127.0.0.1 </dev/null >>"$DIR/log/epmd.log" 2>&1 &
  echo $! >"$DIR/epmd.pid"
  local deadline=$((SECONDS + 10))
  until ! port_free "$EPMD_PORT"; do
    alive "$(cat "$DIR/epmd.pid")" || die "epmd exited at once; see $DIR/log/epmd.log"
    [ "$SECONDS" -lt "$deadline" ] || die "epmd did not listen on 127.0.0.1:$EPMD_PORT in 10 s"
    sleep 0.1
  done
}

# ------------------------------------------------------------------ commands

cmd_start() {
  mkdir -p "$DIR"
  absolute_dir
  if [ -s "$DIR/ports" ]; then
    load_env
    if beam_pid >/dev/null && ctl await_startup --timeout 10 >/dev/null 2>&1; then
      echo "$AMQP_PORT"
      return 0
    fi
    # Restarting: keep the ports (and so the node's address) unless someone took them.
    if ! beam_pid >/dev/null; then
      for p in "$AMQP_PORT" "$DIST_PORT"; do
        port_free "$p" || { pick_ports >"$DIR/ports"; break; }
      done
    fi
  else
    pick_ports >"$DIR/ports"
  fi
  load_env
  write_config
  echo "$AMQP_PORT" >"$DIR/amqp.port"
  start_epmd

  if ! beam_pid >/dev/null; then
    rm -f "$DIR/beam.pid"
    # The wrapper shell stays as beam.smp's parent and turns SIGTERM into a clean stop.
    # The redirections are on the subshell, not only on rabbitmq-server: a background job that
    # kept this script's stdout would hold `$(rabbitmq.sh start DIR)` open for the node's life.
    (cd "$DIR" && exec setsid "$RMQ_SBIN/rabbitmq-server") </dev/null >>"$DIR/log/startup.log" 2>&1 &
    echo $! >"$DIR/launcher.pid"
  fi

  local deadline=$((SECONDS + START_TIMEOUT))
  until [ -s "$DIR/beam.pid" ]; do
    alive "$(cat "$DIR/launcher.pid" 2>/dev/null)" ||
      die "the node exited while starting; see $DIR/log/startup.log and $DIR/log/"
    [ "$SECONDS" -lt "$deadline" ] || die "no PID file after ${START_TIMEOUT}s; see $DIR/log/"
    sleep 0.2
  done
  local left=$((deadline - SECONDS))
  [ "$left" -gt 5 ] || left=5
  if ! ctl wait --timeout "$left" "$DIR/beam.pid" >>"$DIR/log/startup.log" 2>&1; then
    die "node did not finish booting in ${START_TIMEOUT}s; see $DIR/log/startup.log and $DIR/log/"
  fi
  until ! port_free "$AMQP_PORT"; do
    [ "$SECONDS" -lt "$deadline" ] || die "AMQP listener 127.0.0.1:$AMQP_PORT not up"
    sleep 0.1
  done
  echo "$AMQP_PORT"
}

cmd_stop() {
  [ -d "$DIR" ] || return 0
  absolute_dir
  [ -s "$DIR/ports" ] || return 0
  load_env
  local pid
  if pid="$(beam_pid)"; then
    # `shutdown` returns once the node's OS process has exited.
    ctl shutdown --timeout "$STOP_TIMEOUT" >>"$DIR/log/stop.log" 2>&1 || true
    if alive "$pid"; then
      kill -TERM "$pid" 2>/dev/null || true
      wait_gone "$pid" "$STOP_TIMEOUT" || {
        echo "rabbitmq.sh: node $pid ignored SIGTERM for ${STOP_TIMEOUT}s; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
        wait_gone "$pid" 10 || die "node $pid survived SIGKILL"
      }
    fi
  fi
  if pid="$(live_pid "$DIR/launcher.pid" rabbitmq-server)"; then
    wait_gone "$pid" 10 || kill -TERM "$pid" 2>/dev/null || true
  fi
  if pid="$(epmd_pid)"; then
    kill -TERM "$pid" 2>/dev/null || true
    wait_gone "$pid" 10 || kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$DIR/beam.pid" "$DIR/epmd.pid" "$DIR/launcher.pid"
}

cmd_pids() {
  absolute_dir
  local pid
  if pid="$(beam_pid)"; then
    echo "$pid"
    descendants "$pid"
  fi
  if pid="$(epmd_pid)"; then echo "$pid"; fi
}

cmd_amqp_port() {
  [ -s "$DIR/amqp.port" ] || die "$DIR/amqp.port missing: start the node first"
  cat "$DIR/amqp.port"
}

valid_queue_name() {
  [[ "$1" =~ ^[A-Za-z0-9._:-]{1,200}$ ]] || die "queue name '$1': use [A-Za-z0-9._:-] only"
}

# Moves SRC to DST inside the node: one dynamic shovel over the node-local ("amqp://") direct
# connection, publisher confirms on DST before acking SRC (ack-mode on-confirm), deleting itself
# once it moved as many messages as SRC held when it started (src-delete-after queue-length).
# Both queues must exist: the shovel publishes to DST through the default exchange rather than
# declaring it, so DST keeps its own arguments (a quorum queue stays quorum). The clock is read
# inside the node, so the figure does not include rabbitmqctl's own start-up.
cmd_shovel_move() {
  local src="$1" dst="$2"
  valid_queue_name "$src"
  valid_queue_name "$dst"
  [ "$src" != "$dst" ] || die "SRC and DST are the same queue"
  absolute_dir
  [ -s "$DIR/ports" ] || die "$DIR holds no node; run: rabbitmq.sh start $DIR"
  load_env
  beam_pid >/dev/null || die "the node in $DIR is not running"
  local name="redrive-bench-move-$src"
  local timeout_ms=$((SHOVEL_TIMEOUT * 1000))
  # One Erlang expression: check both queues, set the shovel, poll SRC's ready count (what
  # queue.declare reports; the statistics behind list_queues lag by seconds) and the shovel's
  # presence every 20 ms; answer {ok, Millis, Before, Moved} or {error, Why}.
  local expr
  expr=$(
    cat <<EOF
Src = <<"$src">>, Dst = <<"$dst">>, Name = <<"$name">>, V = <<"/">>,
Count = fun(Q) ->
  case rabbit_amqqueue:lookup(rabbit_misc:r(V, queue, Q)) of
    {ok, AQ} -> case rabbit_amqqueue:stat(AQ) of {ok, M, _} -> M; _ -> -1 end;
    _ -> missing
  end
end,
case {Count(Src), Count(Dst)} of
  {missing, _} -> {error, "source queue not found"};
  {_, missing} -> {error, "destination queue not found"};
  {Before, DstBefore} ->
    Def = [{<<"src-protocol">>, <<"amqp091">>}, {<<"src-uri">>, <<"amqp://">>},
           {<<"src-queue">>, Src}, {<<"src-delete-after">>, <<"queue-length">>},
           {<<"dest-protocol">>, <<"amqp091">>}, {<<"dest-uri">>, <<"amqp://">>},
           {<<"dest-exchange">>, <<"">>}, {<<"dest-exchange-key">>, Dst},
           {<<"ack-mode">>, <<"on-confirm">>}],
    T0 = erlang:monotonic_time(millisecond),
    case rabbit_runtime_parameters:set(V, <<"shovel">>, Name, Def, <<"rabbitmq.sh">>) of
      ok ->
        Deadline = T0 + $timeout_ms,
        Wait = fun Loop() ->
          Left = Count(Src),
          Shovel = rabbit_runtime_parameters:lookup(V, <<"shovel">>, Name),
          Now = erlang:monotonic_time(millisecond),
          if
            Left =:= 0, Shovel =:= not_found ->
              {ok, Now - T0, Before, Count(Dst) - DstBefore};
            Now > Deadline ->
              rabbit_runtime_parameters:clear(V, <<"shovel">>, Name, <<"rabbitmq.sh">>),
              {error, {timeout, Left, "messages left"}};
            true -> timer:sleep(20), Loop()
          end
        end,
        Wait();
      Err -> {error, Err}
    end
end.
EOF
  )
  local out
  out="$(ctl eval "$expr" --timeout $((SHOVEL_TIMEOUT + 60)) 2>&1)" ||
    die "shovel-move failed: $out"
  # {ok,Millis,Before,Moved}
  if [[ "$out" =~ ^\{ok,([0-9]+),([0-9]+),(-?[0-9]+)\}$ ]]; then
    local ms="${BASH_REMATCH[1]}" before="${BASH_REMATCH[2]}" moved="${BASH_REMATCH[3]}"
    echo "shovel-move: $before messages in $src, $dst grew by $moved" >&2
    awk -v ms="$ms" 'BEGIN { printf "%.3f\n", ms / 1000 }'
  else
    die "shovel-move: $out"
  fi
}

# ------------------------------------------------------------------ main

[ $# -ge 2 ] || usage
cmd="$1"
DIR="$2"
shift 2
case "$cmd" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  pids) cmd_pids ;;
  amqp-port) cmd_amqp_port ;;
  shovel-move)
    [ $# -eq 2 ] || usage
    cmd_shovel_move "$1" "$2"
    ;;
  ctl)
    absolute_dir
    [ -s "$DIR/ports" ] || die "$DIR holds no node"
    load_env
    ctl "$@"
    ;;
  *) usage ;;
esac

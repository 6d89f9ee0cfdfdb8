#!/usr/bin/env bash
# Serinus runtime vs peer model servers, in one run, same models / bodies / wrk / CPU pinning.
#   bash bench/runtime/run.sh                 # peers (mlserver_default kserve floor1 floor2) + serinus
#   PEERS="floor1" DUR=5 bash bench/runtime/run.sh
#   PEERS="" bash bench/runtime/run.sh        # serinus only (ratios then use bench/runtime/results/)
#   AB_ONLY=1 REPS=5 bash bench/runtime/run.sh  # only the interleaved bare-app/Serinus A/B
# Peers are run by ../shared/peers-bench/bench.sh itself (it installs them into $W on first use,
# ~10 min); Serinus is then measured exactly as bench.sh measures a server: started with setsid
# under `taskset -c $SRV_CPU`, wrk -t1 under `taskset -c $LOAD_CPU`, 1 s warm-up, $DUR s measured,
# post.lua, RSS summed over the process group 3 s after it first answered.
# Writes bench/runtime/results/{load,servers}.jsonl and the "## Runtime" section of bench/README.md.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PEERS_DIR=${PEERS_DIR:-$REPO/../shared/peers-bench}
[ -d "$PEERS_DIR" ] || PEERS_DIR=/work/shared/peers-bench
W=${W:-/tmp/peers}
DUR=${DUR:-10}; WARM=${WARM:-1}
LOAD_CPU=${LOAD_CPU:-0}; SRV_CPU=${SRV_CPU:-1}
PEERS=${PEERS-"mlserver_default kserve floor1 floor2"}
BOTH_CPUS=${BOTH_CPUS:-0,1}
PY=${PY:-$REPO/.venv/bin/python}
RUNTIME=${RUNTIME:-$REPO/.venv/bin/serinus-runtime}
PORT=8080
OUTD=${OUTD:-$W/out-serinus}
RES=$OUTD/load.jsonl; SRV=$OUTD/servers.jsonl; PROBE=$OUTD/probes-serinus.txt
mkdir -p "$OUTD" "$HERE/results"

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
if [ -z "${AB_ONLY:-}" ]; then
if [ -n "$PEERS" ]; then
  ONLY="$PEERS" W="$W" DUR="$DUR" WARM="$WARM" OUTD="$OUTD" bash "$PEERS_DIR/bench.sh"
else
  # Serinus only: keep the peers' rows of the previous run so the ratios still have a base.
  grep -v '"label":"serinus' "$HERE/results/load.jsonl" > "$RES" 2>/dev/null || : > "$RES"
  grep -v '"server":"serinus' "$HERE/results/servers.jsonl" > "$SRV" 2>/dev/null || : > "$SRV"
  [ -f "$W/bodies/v2_1.json" ] || { echo "no $W/bodies: run once with PEERS set"; exit 1; }
fi
: > "$PROBE"
fi
"$PY" "$HERE/prepare.py" "$W"
VER=$("$PY" -c 'import serinus_runtime; print(serinus_runtime.__version__)')

# start NAME MODEL ARGS... ; sets SPID (session leader). CPUS (default $SRV_CPU) pins it.
start() {
  local name=$1 m=$2; shift 2
  local cpus=${CPUS:-$SRV_CPU}
  local sha t0 t1 t2 code
  sha=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['sha256'])" "$W/serinus/$m/serinus.json")
  t0=$(date +%s.%N); t1=""; t2=""
  setsid taskset -c "$cpus" "$RUNTIME" --model-uri "$W/serinus/$m" --sha256 "$sha" --trust \
    --host 127.0.0.1 --port $PORT --log-level warning "$@" > "$OUTD/$name-$m.log" 2>&1 &
  SPID=$!
  for _ in $(seq 1 1200); do
    if [ -z "$t1" ]; then
      code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/v2/health/ready")
      [ "$code" = 200 ] && t1=$(date +%s.%N)
    fi
    code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
      --data @"$W/bodies/v2_1.json" "http://127.0.0.1:$PORT/v2/models/$m/infer")
    if [ "$code" = 200 ]; then t2=$(date +%s.%N); break; fi
    kill -0 $SPID 2>/dev/null || { echo "serinus $name died"; tail -5 "$OUTD/$name-$m.log"; return 1; }
    sleep 0.1
  done
  [ -z "$t2" ] && { echo "serinus $name never served"; return 1; }
  [ -z "$t1" ] && t1=$t2
  sleep 3
  local rss nproc
  rss=$(ps -o rss= -g $SPID | awk '{s+=$1} END{printf "%.0f", s/1024}')
  nproc=$(ps -o pid= -g $SPID | wc -l)
  printf '{"server":"%s","model":"%s","ready_health_s":%.2f,"first_infer_s":%.2f,"rss_mb":%s,"procs":%s}\n' \
    "$name" "$m" "$(echo "$t1 - $t0" | bc)" "$(echo "$t2 - $t0" | bc)" "$rss" "$nproc" | tee -a "$SRV"
}

stop() {
  kill -TERM -- -$SPID 2>/dev/null
  for _ in $(seq 1 150); do kill -0 -- -$SPID 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- -$SPID 2>/dev/null
  wait $SPID 2>/dev/null
  sleep 1
}

# load LABEL MODEL PATH BODYPREFIX "ROWS" "CONCS"
load() {
  local pre=$1 m=$2 path=$3 bprefix=$4 rowsl=$5 concs=$6 rows c url
  url="http://127.0.0.1:$PORT${path//\{m\}/$m}"
  for rows in $rowsl; do for c in $concs; do
    BODY="$W/bodies/${bprefix}_$rows.json" OUT=/dev/null LABEL=warm \
      taskset -c $LOAD_CPU wrk -t1 -c$c -d${WARM}s --timeout 10s -s "$PEERS_DIR/post.lua" "$url" >/dev/null 2>&1
    BODY="$W/bodies/${bprefix}_$rows.json" OUT="$RES" LABEL="$pre|$m|$rows|$c" \
      taskset -c $LOAD_CPU wrk -t1 -c$c -d${DUR}s --timeout 10s -s "$PEERS_DIR/post.lua" "$url" >/dev/null 2>&1
    tail -1 "$RES"
  done; done
}

probe() {
  local m=$1 b
  {
    echo "=================== serinus $VER ($m)"
    for u in /v2/health/ready /v2/health/live /v2 /v2/models/$m /v2/models/$m/ready /v2/models/nope/ready; do
      echo "--- GET $u"; curl -s -w '\n[HTTP %{http_code}]\n' "http://127.0.0.1:$PORT$u" | head -c 900; echo
    done
    for b in bad_shape bad_string bad_missing_inputs bad_shape_mismatch; do
      echo "--- BAD $b"
      curl -s -w '\n[HTTP %{http_code}]\n' -H 'Content-Type: application/json' \
        --data @"$W/bodies/$b.json" "http://127.0.0.1:$PORT/v2/models/$m/infer"; echo
    done
    echo "--- BAD not-json"
    curl -s -w '\n[HTTP %{http_code}]\n' -H 'Content-Type: application/json' --data 'not json' \
      "http://127.0.0.1:$PORT/v2/models/$m/infer"; echo
    echo "--- V1 BAD missing instances"
    curl -s -w '\n[HTTP %{http_code}]\n' -H 'Content-Type: application/json' --data '{"foo":1}' \
      "http://127.0.0.1:$PORT/v1/models/$m:predict"; echo
    echo "--- METRICS (families)"
    curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^# TYPE/{print $3, $4}' | sort -u
  } >> "$PROBE" 2>&1
}

if [ -z "${AB_ONLY:-}" ]; then
NATIVE="serinus $VER (native server, 1 process)"
for m in m1 m2; do
  start serinus "$m" || continue
  [ "$m" = m1 ] && probe "$m"
  load "$NATIVE|V2" "$m" "/v2/models/{m}/infer" v2 "1 100" "1 8 32"
  load "$NATIVE|V1" "$m" "/v1/models/{m}:predict" v1 "1 100" "8"
  stop
done
# The same App under uvicorn + ASGI (why the native server exists): the headline cells only.
start serinus-uvicorn m1 --server uvicorn && {
  load "serinus $VER (same app under uvicorn ASGI)|V2" m1 "/v2/models/{m}/infer" v2 "1 100" "8"
  stop
}

# Two worker processes on both cores (sharing core 0 with wrk, as the peers' 2-worker configs do).
for m in m1 m2; do
  CPUS=$BOTH_CPUS start serinus-2workers "$m" --workers 2 && {
    load "serinus $VER (native server, 2 workers)|V2" "$m" "/v2/models/{m}/infer" v2 "1" "8 32"
    stop
  }
done

fi

# Interleaved A/B on the headline cells: the bare app and Serinus run side by side on core 1 (the
# idle one costs nothing) and wrk alternates between them, REPS times, so load from other work
# on the box hits both alike. The summary reports medians.
AB=$OUTD/ab.jsonl; : > "$AB"
REPS=${REPS:-3}
( cd "$W" && exec setsid taskset -c "$SRV_CPU" env MODEL_DIR="$W/models" "$W/venv-floor/bin/uvicorn" \
    floor_app:app --host 127.0.0.1 --port 8081 --loop uvloop --http httptools --no-access-log \
    --log-level warning ) > "$OUTD/ab-floor.log" 2>&1 &
FPID=$!
PIDS=()
for m in m1 m2; do
  sha=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['sha256'])" "$W/serinus/$m/serinus.json")
  port=$([ $m = m1 ] && echo 8082 || echo 8083)
  setsid taskset -c "$SRV_CPU" "$RUNTIME" --model-uri "$W/serinus/$m" --sha256 "$sha" --trust \
    --host 127.0.0.1 --port $port --log-level warning > "$OUTD/ab-serinus-$m.log" 2>&1 &
  PIDS+=($!)
done
for port in 8081 8082 8083; do
  for _ in $(seq 1 300); do
    curl -s -o /dev/null "http://127.0.0.1:$port/v2/health/ready" && break; sleep 0.1
  done
done
for cell in "m1 1 8" "m2 1 32" "m1 100 8"; do
  set -- $cell; m=$1; rows=$2; c=$3
  sport=$([ $m = m1 ] && echo 8082 || echo 8083)
  for rep in $(seq 1 "$REPS"); do
    for who in floor serinus; do
      port=$([ $who = floor ] && echo 8081 || echo $sport)
      url="http://127.0.0.1:$port/v2/models/$m/infer"
      BODY="$W/bodies/v2_$rows.json" OUT=/dev/null LABEL=warm \
        taskset -c $LOAD_CPU wrk -t1 -c$c -d${WARM}s --timeout 10s -s "$PEERS_DIR/post.lua" "$url" >/dev/null 2>&1
      BODY="$W/bodies/v2_$rows.json" OUT="$AB" LABEL="$who|$m|$rows|$c|$rep" \
        taskset -c $LOAD_CPU wrk -t1 -c$c -d${DUR}s --timeout 10s -s "$PEERS_DIR/post.lua" "$url" >/dev/null 2>&1
      tail -1 "$AB"
    done
  done
done
for pid in $FPID "${PIDS[@]}"; do kill -TERM -- -$pid 2>/dev/null; done
sleep 2
for pid in $FPID "${PIDS[@]}"; do kill -KILL -- -$pid 2>/dev/null; done

if [ -n "${AB_ONLY:-}" ]; then
  cp "$AB" "$HERE/results/"
else
  cp "$RES" "$SRV" "$PROBE" "$AB" "$HERE/results/"
  # Archive this run next to the earlier ones, with how busy the box was (other work skews cells).
  mkdir -p "$HERE/results/runs"
  N=$(( $(ls "$HERE"/results/runs/*-load.jsonl 2>/dev/null | wc -l) + 1 ))
  cp "$RES" "$HERE/results/runs/$N-load.jsonl"; cp "$SRV" "$HERE/results/runs/$N-servers.jsonl"
  cp "$AB" "$HERE/results/runs/$N-ab.jsonl"
  echo "load avg at start $LOAD_START, at end $(cut -d' ' -f1-3 /proc/loadavg)" > "$HERE/results/runs/$N-note.txt"
  [ -f "$OUTD/inproc.jsonl" ] && cp "$OUTD/inproc.jsonl" "$HERE/results/"
fi
"$PY" "$HERE/summarize.py" "$HERE/results" "$REPO/bench/README.md" "DUR=$DUR PEERS=$PEERS"

// Command dragonboat runs bench:agent's workload on Dragonboat v4, for bench:compare: three
// NodeHosts in this process over loopback TCP, fsync on, N shards of 3 replicas, clients bound
// to a shard each proposing fixed-size commands into an in-memory KV (closed loop, or open loop
// at -rate operations a second), with a share of linearizable reads. -tuned sets one execution
// shard and one log DB shard, the fair setting on a 2-core machine; without it Dragonboat runs
// with its defaults (16 and 16). The last line printed is one JSON object.
package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/lni/dragonboat/v4"
	"github.com/lni/dragonboat/v4/config"
	"github.com/lni/dragonboat/v4/logger"
	sm "github.com/lni/dragonboat/v4/statemachine"
)

// kv keys entries by their first 8 bytes, like the other benchmarks' state machines.
type kv struct{ m map[string][]byte }

func (k *kv) Update(e sm.Entry) (sm.Result, error) {
	if len(e.Cmd) >= 8 {
		k.m[string(e.Cmd[:8])] = append([]byte(nil), e.Cmd...)
	}
	return sm.Result{Value: e.Index}, nil
}

func (k *kv) Lookup(q interface{}) (interface{}, error) { return k.m[string(q.([]byte))], nil }

func (k *kv) SaveSnapshot(w io.Writer, _ sm.ISnapshotFileCollection, _ <-chan struct{}) error {
	for key, v := range k.m {
		var n [4]byte
		binary.LittleEndian.PutUint32(n[:], uint32(len(v)))
		if _, err := w.Write(append(append([]byte(key), n[:]...), v...)); err != nil {
			return err
		}
	}
	return nil
}

func (k *kv) RecoverFromSnapshot(r io.Reader, _ []sm.SnapshotFile, _ <-chan struct{}) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	k.m = map[string][]byte{}
	for p := 0; p+12 <= len(b); {
		n := int(binary.LittleEndian.Uint32(b[p+8:]))
		k.m[string(b[p:p+8])] = b[p+12 : p+12+n]
		p += 12 + n
	}
	return nil
}

func (k *kv) Close() error { return nil }

func freePort() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func pct(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	return xs[int(float64(len(xs)-1)*p+0.5)]
}

func main() {
	shards := flag.Int("shards", 48, "shards of 3 replicas")
	clients := flag.Int("clients", 1024, "clients, each bound to one shard")
	payload := flag.Int("payload", 16, "command size in bytes")
	seconds := flag.Float64("seconds", 10, "length of the run")
	reads := flag.Float64("reads", 0, "share of linearizable reads")
	rate := flag.Float64("rate", 0, "open loop at this many operations a second (0: closed loop)")
	tuned := flag.Bool("tuned", false, "one execution shard and one log DB shard")
	flag.Parse()
	logger.GetLogger("").SetLevel(logger.ERROR)
	for _, name := range []string{"raft", "rsm", "transport", "dragonboat", "logdb", "raftpb"} {
		logger.GetLogger(name).SetLevel(logger.CRITICAL)
	}

	root, err := os.MkdirTemp("", "zongzi-dragonboat-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(root)
	addrs := []string{freePort(), freePort(), freePort()}
	hosts := make([]*dragonboat.NodeHost, 3)
	for i := range hosts {
		nhc := config.NodeHostConfig{
			NodeHostDir:    filepath.Join(root, fmt.Sprintf("host%d", i)),
			RTTMillisecond: 100, // with ElectionRTT 10 and HeartbeatRTT 2: the engine's timing
			RaftAddress:    addrs[i],
		}
		if *tuned {
			nhc.Expert.Engine = config.GetDefaultEngineConfig()
			nhc.Expert.Engine.ExecShards = 1
			nhc.Expert.LogDB = config.GetDefaultLogDBConfig()
			nhc.Expert.LogDB.Shards = 1
		}
		if hosts[i], err = dragonboat.NewNodeHost(nhc); err != nil {
			panic(err)
		}
	}
	t0 := time.Now()
	for s := 1; s <= *shards; s++ {
		members := map[uint64]dragonboat.Target{}
		for i := range hosts {
			members[uint64(i+1)] = addrs[i]
		}
		for i, nh := range hosts {
			rc := config.Config{
				ReplicaID: uint64(i + 1), ShardID: uint64(s),
				ElectionRTT: 10, HeartbeatRTT: 2, CheckQuorum: true,
			}
			create := func(uint64, uint64) sm.IStateMachine { return &kv{m: map[string][]byte{}} }
			if err := nh.StartReplica(members, false, create, rc); err != nil {
				panic(err)
			}
		}
	}
	// The host of each shard's leader, found within 60 s.
	leader := make([]*dragonboat.NodeHost, *shards+1)
	for found, deadline := 0, time.Now().Add(60*time.Second); found < *shards; {
		if time.Now().After(deadline) {
			panic("no leader for every shard within 60 s")
		}
		found = 0
		for s := 1; s <= *shards; s++ {
			if id, _, ok, _ := hosts[0].GetLeaderID(uint64(s)); ok && id > 0 {
				leader[s] = hosts[id-1]
				found++
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Every shard has taken a write before the clock starts (bounded: 60 s in all).
	warm := make([]byte, *payload)
	for s, deadline := 1, time.Now().Add(60*time.Second); s <= *shards; {
		if time.Now().After(deadline) {
			panic("a shard did not take a write within 60 s")
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := leader[s].SyncPropose(ctx, leader[s].GetNoOPSession(uint64(s)), warm)
		cancel()
		if err == nil {
			s++
		} else if id, _, ok, _ := hosts[0].GetLeaderID(uint64(s)); ok && id > 0 {
			leader[s] = hosts[id-1]
		}
	}
	fmt.Fprintf(os.Stderr, "%d shards ready in %.1fs\n", *shards, time.Since(t0).Seconds())

	var mu sync.Mutex
	var wlat, rlat []float64
	errors := map[string]int{}
	op := func(c, n int, due time.Time, buf []byte) {
		s := uint64(c%*shards + 1)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		binary.LittleEndian.PutUint32(buf[0:], uint32(c))
		if len(buf) >= 8 {
			binary.LittleEndian.PutUint32(buf[4:], uint32(n&0xffff))
		}
		read := *reads > 0 && rand.Float64() < *reads
		var err error
		if read {
			_, err = leader[s].SyncRead(ctx, s, append([]byte(nil), buf[:8]...))
		} else {
			_, err = leader[s].SyncPropose(ctx, leader[s].GetNoOPSession(s), buf)
		}
		ms := float64(time.Since(due).Microseconds()) / 1000
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err != nil:
			errors[err.Error()]++
		case read:
			rlat = append(rlat, ms)
		default:
			wlat = append(wlat, ms)
		}
	}
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(time.Duration(*seconds * float64(time.Second)))
	if *rate == 0 {
		for c := 0; c < *clients; c++ {
			wg.Add(1)
			go func(c int) {
				defer wg.Done()
				buf := make([]byte, *payload)
				for n := 0; time.Now().Before(end); n++ {
					op(c, n, time.Now(), buf)
				}
			}(c)
		}
	} else {
		for i := 0; ; i++ {
			due := start.Add(time.Duration(float64(i) / *rate * float64(time.Second)))
			if due.After(end) {
				break
			}
			time.Sleep(time.Until(due))
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				op(i%*clients, i, due, make([]byte, *payload))
			}(i)
		}
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	sort.Float64s(wlat)
	sort.Float64s(rlat)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	for _, nh := range hosts {
		nh.Close()
	}
	out, _ := json.Marshal(map[string]interface{}{
		"bench": "dragonboat", "tuned": *tuned, "shards": *shards, "clients": *clients,
		"payload": *payload, "readShare": *reads, "rate": *rate, "seconds": secs,
		"writes_per_sec": float64(len(wlat)) / secs, "reads_per_sec": float64(len(rlat)) / secs,
		"errors": errors, "p50_ms": pct(wlat, 0.5), "p99_ms": pct(wlat, 0.99),
		"p999_ms": pct(wlat, 0.999), "read_p50_ms": pct(rlat, 0.5), "read_p99_ms": pct(rlat, 0.99),
		"heap_mb": ms.HeapSys >> 20,
	})
	fmt.Println(string(out))
}

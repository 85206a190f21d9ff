// The chaos suite's linearizability checker: reads a history of a key-value store (one JSON
// object per line) on standard input and checks it with porcupine, one key at a time. It
// prints one JSON line: {"linearizable": bool, "operations": n, "keys": n, "timed_out": bool}.
//
// A line is {"key", "op" ("read" | "write" | "cas"), "value", "from", "to", "ok", "call",
// "return", "client"}; "return" is null for an operation whose outcome is unknown (it may take
// effect at any time after its call). A read's "value" is what it returned ("" for none), a
// cas's "ok" whether it swapped.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/anishathalye/porcupine"
)

type line struct {
	Key    string `json:"key"`
	Op     string `json:"op"`
	Value  string `json:"value"`
	From   string `json:"from"`
	To     string `json:"to"`
	Ok     bool   `json:"ok"`
	Call   int64  `json:"call"`
	Return *int64 `json:"return"`
	Client int    `json:"client"`
}

type input struct {
	key, op, value, from, to string
}

type output struct {
	value string
	ok    bool
	// unknown: the operation may or may not have taken effect; nothing was observed.
	unknown bool
}

// step is a register per key: reads see the last value written, a cas swaps when it finds
// `from`.
func step(state, in, out interface{}) (bool, interface{}) {
	s := state.(string)
	i := in.(input)
	o := out.(output)
	switch i.op {
	case "read":
		return o.unknown || o.value == s, s
	case "write":
		return true, i.value
	case "cas":
		if o.unknown {
			if s == i.from {
				return true, i.to
			}
			return true, s
		}
		if o.ok {
			return s == i.from, i.to
		}
		return s != i.from, s
	}
	return false, s
}

var model = porcupine.Model{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		by := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range h {
			k := op.Input.(input).key
			if _, seen := by[k]; !seen {
				keys = append(keys, k)
			}
			by[k] = append(by[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, by[k])
		}
		return out
	},
	Init: func() interface{} { return "" },
	Step: step,
	DescribeOperation: func(in, out interface{}) string {
		i, o := in.(input), out.(output)
		return fmt.Sprintf("%s(%s %s%s→%s) = %q %v", i.op, i.key, i.from, i.value, i.to, o.value, o.ok)
	},
}

func main() {
	timeout := 5 * time.Minute
	if s := os.Getenv("CHECK_TIMEOUT"); s != "" {
		if d, err := time.ParseDuration(s); err == nil {
			timeout = d
		}
	}
	var ops []porcupine.Operation
	keys := map[string]bool{}
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for sc.Scan() {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			fmt.Fprintln(os.Stderr, "bad history line:", err)
			os.Exit(2)
		}
		ret := int64(math.MaxInt64)
		if l.Return != nil {
			ret = *l.Return
		}
		keys[l.Key] = true
		ops = append(ops, porcupine.Operation{
			ClientId: l.Client,
			Input:    input{key: l.Key, op: l.Op, value: l.Value, from: l.From, to: l.To},
			Call:     l.Call,
			Output:   output{value: l.Value, ok: l.Ok, unknown: l.Return == nil},
			Return:   ret,
		})
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "reading the history:", err)
		os.Exit(2)
	}
	res := porcupine.CheckOperationsTimeout(model, ops, timeout)
	out, _ := json.Marshal(map[string]interface{}{
		"linearizable": res == porcupine.Ok,
		"timed_out":    res == porcupine.Unknown,
		"operations":   len(ops),
		"keys":         len(keys),
	})
	fmt.Println(string(out))
}

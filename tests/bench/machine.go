package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// machine describes where the figures were taken; they mean little without it.
type machine struct {
	cpu, os, kernel, goVersion, revision string
	loadBefore, loadAfter                string // /proc/loadavg: other work on the machine skews every figure
	pressureBefore, pressureAfter        string // CPU pressure: share of time runnable tasks waited for a CPU
	cores                                int
	memory                               string
	date                                 time.Time
}

func machineInfo(ctx context.Context, root string) machine {
	m := machine{cores: runtime.NumCPU(), date: time.Now().UTC(), cpu: "unknown", os: runtime.GOOS, memory: "unknown"}
	if v := procField("/proc/cpuinfo", "model name"); v != "" {
		m.cpu = v
	}
	if v := procField("/proc/meminfo", "MemTotal"); v != "" {
		if kb, err := strconv.ParseInt(strings.TrimSuffix(v, " kB"), 10, 64); err == nil {
			m.memory = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = strings.TrimSpace(string(b))
	}
	if v := procField("/etc/os-release", "PRETTY_NAME"); v != "" {
		m.os = strings.Trim(v, `"`)
	}
	if out, err := exec.CommandContext(ctx, "go", "env", "GOVERSION").Output(); err == nil {
		m.goVersion = strings.TrimSpace(string(out))
	}
	if out, err := exec.CommandContext(ctx, "git", "-C", root, "describe", "--tags", "--always", "--dirty").Output(); err == nil {
		m.revision = strings.TrimSpace(string(out))
	}
	return m
}

// procField reads "key: value" or "key=value" from a /proc or /etc file.
func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, key) {
			continue
		}
		rest := strings.TrimSpace(line[len(key):])
		if len(rest) > 0 && (rest[0] == ':' || rest[0] == '=') {
			return strings.TrimSpace(rest[1:])
		}
	}
	return ""
}

// loadAvg is the 1, 5 and 15 minute load average.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// cpuPressure is the kernel's CPU pressure, "some avg10" (percent of the last 10 s in which
// some runnable task waited for a CPU), or -1 without PSI.
func cpuPressure() float64 {
	b, err := os.ReadFile("/proc/pressure/cpu")
	if err != nil {
		return -1
	}
	for _, f := range strings.Fields(string(b)) {
		if v, ok := strings.CutPrefix(f, "avg10="); ok {
			if x, err := strconv.ParseFloat(v, 64); err == nil {
				return x
			}
		}
	}
	return -1
}

func pressureString(p float64) string {
	if p < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f%%", p)
}

// settle waits, up to max, for other work on the machine to calm down: with CPU pressure
// high, every figure measures the neighbours as much as the tools.
func settle(ctx context.Context, max time.Duration, threshold float64) float64 {
	ctx, cancel := context.WithTimeout(ctx, max)
	defer cancel()
	p := cpuPressure()
	for p > threshold {
		select {
		case <-ctx.Done():
			return p
		case <-time.After(2 * time.Second):
		}
		p = cpuPressure()
	}
	return p
}

package egress

import (
	"bufio"
	"bytes"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// hostsCheckEvery is how often the hosts file is checked for changes (the
// standard library's resolver checks it as often).
const hostsCheckEvery = 5 * time.Second

// hostsFile answers names from a hosts file (/etc/hosts), as the system's
// resolver does before it asks DNS. It reads the file again when its size
// or modification time changed, looking at most every hostsCheckEvery. A
// missing or unreadable file answers nothing.
type hostsFile struct {
	path string
	now  func() time.Time

	mu      sync.Mutex
	checked time.Time
	mtime   time.Time
	size    int64
	byName  map[string][]netip.Addr
}

func newHostsFile(path string, now func() time.Time) *hostsFile {
	return &hostsFile{path: path, now: now}
}

// lookup returns the addresses the file gives name (lower case, without
// its trailing dot), and whether it lists the name at all.
func (h *hostsFile) lookup(name string) ([]netip.Addr, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if now := h.now(); h.checked.IsZero() || now.Sub(h.checked) >= hostsCheckEvery || now.Before(h.checked) {
		h.checked = now
		h.reload()
	}
	addrs, ok := h.byName[name]
	return addrs, ok
}

// reload reads the file again if it changed. h.mu is held.
func (h *hostsFile) reload() {
	st, err := os.Stat(h.path)
	if err != nil {
		h.byName, h.mtime, h.size = nil, time.Time{}, 0
		return
	}
	if h.byName != nil && st.ModTime().Equal(h.mtime) && st.Size() == h.size {
		return
	}
	data, err := os.ReadFile(h.path)
	if err != nil {
		h.byName = nil
		return
	}
	h.byName, h.mtime, h.size = parseHosts(data), st.ModTime(), st.Size()
}

// parseHosts reads a hosts file: one address per line followed by its
// names, "#" starting a comment. Names are folded to lower case and lose a
// trailing dot; lines whose first field is not an IP address are skipped.
// Each name keeps its addresses in the file's order, without repeats.
func parseHosts(data []byte) map[string][]netip.Addr {
	out := map[string][]netip.Addr{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		addr, err := netip.ParseAddr(fields[0])
		if err != nil {
			continue
		}
		for _, name := range fields[1:] {
			name = strings.ToLower(strings.TrimSuffix(name, "."))
			if name == "" {
				continue
			}
			if !slices.Contains(out[name], addr) {
				out[name] = append(out[name], addr)
			}
		}
	}
	return out
}

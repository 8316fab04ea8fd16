package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/natalg/natalg/nat"
)

// loadStateFile restores the engine from the state file at path (natalg
// run --state), before any packet is served. A missing file starts the
// daemon empty. A file that cannot be used (corrupt, truncated, foreign,
// another format version) is logged, renamed to path.bad for inspection,
// and the daemon starts empty: refusing to start would leave the queue
// without a reader and every forwarded packet dropped. A file that loaded
// is removed: were the daemon killed before its next clean shutdown, a
// later start would otherwise restore gateway state the connections have
// since moved past, which is worse than none (an FTP control connection
// whose restored position is behind its stream has its segments dropped
// as out of order). Nothing is done when path is empty.
func loadStateFile(eng *nat.Engine, path string, log *slog.Logger) {
	if path == "" {
		return
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		log.Info("state: no file, starting empty", "file", path)
		return
	}
	if err != nil {
		log.Error("state: cannot open, starting empty", "file", path, "err", err)
		return
	}
	t0 := time.Now()
	st, err := eng.LoadState(bufio.NewReaderSize(f, 1<<16), t0)
	f.Close()
	if err != nil {
		bad := path + ".bad"
		if rerr := os.Rename(path, bad); rerr != nil {
			log.Error("state: not loaded, starting empty", "file", path, "err", err, "rename_err", rerr)
			return
		}
		log.Error("state: not loaded, starting empty", "file", path, "err", err, "moved_to", bad)
		return
	}
	log.Info("state: restored", "file", path, "saved", st.SavedAt.UTC().Format(time.RFC3339),
		"flows", st.Flows, "ftp", st.FTP, "expectations", st.Expectations, "bindings", st.Bindings,
		"skipped_expired", st.Expired, "skipped_config", st.Misfit, "skipped_full", st.Full,
		"skipped_clash", st.Clash, "skipped_orphan", st.Orphans, "skipped_superseded", st.Superseded, "took", time.Since(t0).Round(time.Microsecond))
	if err := os.Remove(path); err != nil {
		log.Warn("state: cannot remove the loaded file; a restart without a clean shutdown would restore it again", "file", path, "err", err)
	}
}

// saveStateFile writes the engine's state to path, after the queues have
// stopped: atomically (a temporary file in the same directory, mode 0600,
// synced, renamed over path, the directory synced), so that a crash while
// saving leaves either the old file or the new one. Nothing is done when
// path is empty.
func saveStateFile(eng *nat.Engine, path string, log *slog.Logger) error {
	if path == "" {
		return nil
	}
	t0 := time.Now()
	if err := writeFileAtomic(path, eng.SaveState); err != nil {
		log.Error("state: not saved", "file", path, "err", err)
		return fmt.Errorf("state: %w", err)
	}
	log.Info("state: saved", "file", path, "flows", eng.Table().Len(), "expectations", eng.Table().ExpectationCount(),
		"bindings", eng.Bindings(), "took", time.Since(t0).Round(time.Microsecond))
	return nil
}

// writeFileAtomic replaces path with what write produces.
func writeFileAtomic(path string, write func(io.Writer) error) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return err
	}
	if err := write(tmp); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return fmt.Errorf("sync %s: %w", dir, err)
		}
	}
	return nil
}

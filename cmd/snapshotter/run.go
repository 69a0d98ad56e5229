package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/snaplog/snaplog/snapshots"
	"github.com/snaplog/snaplog/snapshotter"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the command failed
	exitUsage = 2 // a wrong command line or configuration
)

// httpShutdownTimeout bounds the graceful stop of the HTTP server after the
// snapshotter has stopped.
const httpShutdownTimeout = 10 * time.Second

// run is the whole program but for the process: it runs the command named
// by args (the arguments after the program name), reading the environment
// through getenv, and returns the exit code. ctx ending stops the command:
// main ends it on SIGINT and SIGTERM. types are the aggregate types the
// binary serves, made with snapshotter.Register. The JSON log lines and the
// messages for people go to stderr; inspect, purge and migrate print to
// stdout.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, types []snapshotter.Type) int {
	names := typeNames(types)
	cmd, rest := cmdRun, args
	switch {
	case len(args) > 0 && args[0] == "version":
		return printVersion(stdout)
	case len(args) > 0 && args[0] == "help":
		about := cmdRun
		if len(args) > 1 && slices.Contains(commands, command(args[1])) {
			about = command(args[1])
		}
		printUsage(stdout, about, names)
		return exitOK
	}
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, rest = command(args[0]), args[1:]
		if !slices.Contains(commands, cmd) {
			fmt.Fprintf(stderr, "snapshotter: unknown command %q\n\n", args[0])
			printUsage(stderr, cmdRun, names)
			return exitUsage
		}
	}
	cfg, err := parseConfig(cmd, rest, getenv, names, stdout, stderr)
	var invalid *invalidConfig
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &invalid):
		fmt.Fprintf(stderr, "snapshotter %s: invalid configuration:\n", cmd)
		for _, e := range invalid.errs {
			fmt.Fprintf(stderr, "  %v\n", e)
		}
		fmt.Fprintf(stderr, "'snapshotter %s -h' lists the flags and environment variables.\n", cmd)
		return exitUsage
	case err != nil: // reported by the flag package, with the usage
		return exitUsage
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	typ, _ := findType(types, cfg.Type)
	switch cmd {
	case cmdInspect:
		return inspect(ctx, cfg, typ, logger, stdout, stderr)
	case cmdRebuild:
		return rebuild(ctx, cfg, typ, logger, stderr)
	case cmdPurge:
		return purge(ctx, cfg, typ, logger, stdout, stderr)
	case cmdMigrate:
		return migrate(ctx, cfg, stdout, stderr)
	case cmdHealthcheck:
		return healthcheck(ctx, cfg.HTTPAddr, stderr)
	case cmdSchema:
		return printSchema(typ, stdout, stderr)
	}
	return serve(ctx, cfg, types, logger)
}

// serve runs the sidecar until ctx ends: the snapshotter, and the HTTP
// server of /healthz, /readyz and /metrics. When ctx ends the snapshotter
// snapshots what is dirty, writes its checkpoints and leaves the group; the
// HTTP server then stops gracefully. A failure of the HTTP server stops the
// snapshotter the same way.
func serve(ctx context.Context, cfg config, types []snapshotter.Type, logger *slog.Logger) int {
	// Run's context: ctx, or the HTTP server's failure. Run ends its
	// transactions and finishes loading states whatever its context, so
	// ending it is the whole of a stop.
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	m := newMetrics(types, cfg.EventsPrefix)
	var final finalCheckpoints
	hooks := m.hooks()
	countCheckpoint := hooks.CheckpointWritten
	hooks.CheckpointWritten = func(topic string, p int32, offset int64) {
		countCheckpoint(topic, p, offset)
		logger.Debug("checkpoint written", slog.String("topic", topic), slog.Int("partition", int(p)), slog.Int64("offset", offset))
		if runCtx.Err() != nil {
			final.add(topic, p, offset)
		}
	}
	attrs := []any{slog.String("connection", cfg.Conn.String()), slog.String("group", cfg.Group), slog.String("snapshot_store", string(cfg.SnapshotStore))}
	if cfg.SnapshotStore == storePostgres {
		attrs = append(attrs, slog.String("postgres", cfg.Postgres.String()))
	}
	logger.Info("starting", attrs...)
	check, err := newBrokerCheck(cfg.Brokers, cfg.KafkaOpts, checkEvery)
	if err != nil {
		logger.Error("cannot start", slog.Any("error", err))
		return exitError
	}
	defer check.Close()
	checks := []*serverCheck{check}
	var pool *pgxpool.Pool // the PostgreSQL store's
	if cfg.SnapshotStore == storePostgres {
		if pool, err = cfg.Postgres.pool(ctx); err != nil {
			logger.Error("cannot start", slog.Any("error", err))
			return exitError
		}
		defer pool.Close()
		// An unmigrated schema stops the sidecar at once; a database that
		// does not answer yet is waited for, as the cluster is.
		if err := cfg.Postgres.ready(ctx, pool); errors.Is(err, snapshots.ErrNotMigrated) {
			logger.Error("cannot start", slog.Any("error", err))
			return exitError
		} else if err != nil {
			logger.Warn("PostgreSQL does not answer yet", slog.Any("error", err))
		}
		store, err := cfg.Postgres.store(pool, nil)
		if err != nil {
			logger.Error("cannot start", slog.Any("error", err))
			return exitError
		}
		checks = append(checks, newPostgresCheck(cfg.Postgres, store, checkEvery))
	}
	s, err := snapshotter.New(cfg.Group, types, cfg.options(logger, hooks, pool)...)
	if err != nil {
		logger.Error("cannot start", slog.Any("error", err))
		return exitError
	}
	m.watch(s)
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		logger.Error("cannot start the HTTP server", slog.Any("error", err))
		return exitError
	}

	notReady := func(ctx context.Context) string {
		return readiness(ctx, func() bool { return runCtx.Err() != nil }, checks, s, cfg.CheckpointInterval)
	}
	srv := &http.Server{
		Handler:           newMux(notReady, m, logger),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() {
		err := srv.Serve(ln)
		if !errors.Is(err, http.ErrServerClosed) {
			logger.Error("HTTP server failed; stopping", slog.Any("error", err))
			stop()
		}
		served <- err
	}()
	logger.Info("HTTP server listening", slog.String("addr", ln.Addr().String()))
	logStop := context.AfterFunc(ctx, func() {
		logger.Info("stopping: snapshotting dirty states, writing checkpoints and leaving the group")
	})
	defer logStop()

	runErr := s.Run(runCtx)

	shutdown, cancel := context.WithTimeout(context.Background(), httpShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		logger.Warn("HTTP server shutdown", slog.Any("error", err))
	}
	httpErr := <-served
	switch {
	case runErr != nil:
		logger.Error("snapshotter failed", slog.Any("error", cfg.Postgres.migrateHint(runErr)))
		return exitError
	case !errors.Is(httpErr, http.ErrServerClosed):
		return exitError
	}
	final.log(logger)
	logger.Info("stopped")
	return exitOK
}

// finalCheckpoints are the last checkpoints written after Run's context
// ended, by events partition: where the next owners of the partitions
// start.
type finalCheckpoints struct {
	mu      sync.Mutex
	offsets map[string]map[int32]int64
}

func (f *finalCheckpoints) add(topic string, p int32, offset int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.offsets == nil {
		f.offsets = make(map[string]map[int32]int64)
	}
	if f.offsets[topic] == nil {
		f.offsets[topic] = make(map[int32]int64)
	}
	f.offsets[topic][p] = offset
}

func (f *finalCheckpoints) log(logger *slog.Logger) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, topic := range slices.Sorted(maps.Keys(f.offsets)) {
		for _, p := range slices.Sorted(maps.Keys(f.offsets[topic])) {
			logger.Info("final checkpoint", slog.String("topic", topic), slog.Int("partition", int(p)), slog.Int64("offset", f.offsets[topic][p]))
		}
	}
}

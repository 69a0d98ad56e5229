package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/snaplog/snaplog/examples/order"
	"github.com/snaplog/snaplog/snapshotter"
)

// main serves the example Order aggregate. A sidecar of one's own domain
// keeps the other files of this directory and changes only the types it
// registers here.
func main() {
	orderType, err := order.Type(order.SchemaVersion)
	if err != nil {
		fmt.Fprintln(os.Stderr, "snapshotter:", err)
		os.Exit(exitError)
	}
	types := []snapshotter.Type{
		snapshotter.Register(orderType),
	}

	// SIGTERM and SIGINT stop the command; a second signal kills the
	// process.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	context.AfterFunc(ctx, stop)
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr, types))
}

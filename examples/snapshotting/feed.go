package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/google/uuid"

	"github.com/snaplog/snaplog/aggregate"
	"github.com/snaplog/snaplog/examples/order"
)

// runFeed saves cfg.feed new orders to <prefix>events.Order on the brokers
// of cfg, for a snapshotter (cmd/snapshotter) to snapshot, and prints a line
// for each. It creates the events topic if it is missing; it writes no
// snapshot and deletes nothing.
func runFeed(ctx context.Context, w, info io.Writer, cfg config) error {
	kb, err := openKafka(cfg, info)
	if err != nil {
		return err
	}
	defer kb.close(ctx)
	events, err := kb.eventLog(ctx, kb.topicPrefix())
	if err != nil {
		return err
	}
	fmt.Fprintf(info, "snapshotting: feeding %d orders to %s on Kafka at %s\n",
		cfg.feed, events.Topic(order.TypeName), strings.Join(kb.seeds, ","))
	return feed(ctx, &printer{w: w}, events, cfg.feed)
}

// feed saves n new orders to events through a repository without a
// snapshot store, and prints each one's id, version, item count and status.
// Order i has 1+i%5 items and every other one is submitted, so that their
// versions differ.
func feed(ctx context.Context, p *printer, events aggregate.EventLog, n int) error {
	repo, err := newRepo(events, order.SchemaVersion)
	if err != nil {
		return err
	}
	defer repo.Close()
	var saved int64
	for i := range n {
		o, err := newOrder(repo, uuid.New(), products(1+i%5, func(k int) float64 { return 10.0 + float64(k) })...)
		if err != nil {
			return err
		}
		if i%2 == 1 {
			if err := o.Submit(); err != nil {
				return err
			}
		}
		if err := repo.Save(ctx, o.Root); err != nil {
			return fmt.Errorf("save order %d of %d: %w", i+1, n, err)
		}
		saved += o.Version()
		p.line("Order %s: version %d, %d items, %s", o.ID(), o.Version(), o.State().ItemCount(), o.State().Status)
		if p.err != nil {
			return p.err
		}
	}
	p.line("Saved %d orders, %d events", n, saved)
	return p.err
}

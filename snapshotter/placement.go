package snapshotter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/log"
)

// placementTimeout bounds the check of one assigned topic's placement.
const placementTimeout = 30 * time.Second

// checkPlacements checks, at each assignment, the placement of every
// assigned events topic against its partition count now (I9). Adding
// partitions to a topic makes the group rebalance, so the assignment is
// where a running snapshotter learns of it.
func (s *Snapshotter) checkPlacements(ctx context.Context, cl *kgo.Client, assigned map[string][]int32) {
	for topic := range assigned {
		typ := s.byTopic[topic]
		if typ == nil {
			continue
		}
		if s.isRefused(topic) {
			cl.PauseFetchTopics(topic)
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, placementTimeout)
		err := s.events.CheckPlacement(cctx, typ.name)
		cancel()
		switch {
		case errors.Is(err, log.ErrPlacement):
			s.refuse(cl, topic, err)
		case err != nil && ctx.Err() == nil:
			// The placement is known since the start; only the
			// partition count could not be asked. The log's own reads
			// ask again within seconds.
			s.cfg.logger.Warn("placement of events topic not checked", slog.String("topic", topic), slog.Any("error", err))
		}
	}
}

// refuse stops snapshotting an events topic for good: its fetches are
// paused, its partitions forgotten (no snapshot or checkpoint of them is
// written any more), Ready turns false and the loop stops, so that Run
// returns the refusal.
func (s *Snapshotter) refuse(cl *kgo.Client, topic string, err error) {
	cl.PauseFetchTopics(topic)
	s.mu.Lock()
	if s.refused == nil {
		s.refused = make(map[string]error)
	}
	s.refused[topic] = err
	for tp := range s.parts {
		if tp.topic == topic {
			delete(s.parts, tp)
		}
	}
	stop := s.stopLoop
	s.mu.Unlock()
	var placed, partitions int32
	if pe := (*log.PlacementError)(nil); errors.As(err, &pe) {
		placed, partitions = pe.Placed, pe.Partitions
	}
	s.cfg.logger.Error("events topic refused: not partitioned as its aggregates were placed; it is no longer snapshotted and the snapshotter stops",
		slog.String("topic", topic), slog.Int("placed_partitions", int(placed)), slog.Int("partitions", int(partitions)), slog.Any("error", err))
	if stop != nil {
		stop()
	}
}

func (s *Snapshotter) isRefused(topic string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refused[topic] != nil
}

// refusal returns the refusals of events topics, nil if there are none.
func (s *Snapshotter) refusal() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, topic := range slices.Sorted(maps.Keys(s.refused)) {
		errs = append(errs, s.refused[topic])
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("snapshotter: %w", errors.Join(errs...))
}

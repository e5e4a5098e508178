package service

import (
	"context"
	"sync"
	"time"
)

// lines queues a service's waiting acquires by lock name. The first in a
// name's line waits on the backend (a watch, or polling); the others wait
// for their turn and try again when it comes, so that a release sets off
// one attempt per instance rather than one per waiter. A release through
// this service wakes the first in line at once.
type lines struct {
	mu sync.Mutex
	q  map[string][]*place
}

// place is one waiter's place in a line.
type place struct {
	turn chan struct{} // closed when the place becomes first
	wake chan struct{} // a release through this service (buffered: one is enough)
}

// enter queues the caller for name and returns once its place is first
// (queued says whether it had to wait for that), or with ctx's error (the
// caller then never was first, and holds no place). leave, to be called
// exactly once when the caller is done, lets the next one in.
func (l *lines) enter(ctx context.Context, name string) (p *place, leave func(), queued bool, err error) {
	p = &place{turn: make(chan struct{}), wake: make(chan struct{}, 1)}
	l.mu.Lock()
	if l.q == nil {
		l.q = map[string][]*place{}
	}
	l.q[name] = append(l.q[name], p)
	first := len(l.q[name]) == 1
	l.mu.Unlock()
	leave = func() { l.leave(name, p) }
	if first {
		return p, leave, false, nil
	}
	select {
	case <-p.turn:
		return p, leave, true, nil
	case <-ctx.Done():
		leave()
		return nil, nil, true, ctx.Err()
	}
}

// busy reports whether anyone is in name's line.
func (l *lines) busy(name string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.q[name]) > 0
}

// leave takes p out of name's line; if it was first, the next one is.
func (l *lines) leave(name string, p *place) {
	l.mu.Lock()
	defer l.mu.Unlock()
	q := l.q[name]
	for i, c := range q {
		if c != p {
			continue
		}
		q = append(q[:i], q[i+1:]...)
		if len(q) == 0 {
			delete(l.q, name)
			return
		}
		l.q[name] = q
		if i == 0 {
			close(q[0].turn)
		}
		return
	}
}

// wake tells the first waiter of name, if any, that the lock was released
// through this service. It only hastens a retry; the provider still
// decides who gets the lock.
func (l *lines) wake(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if q := l.q[name]; len(q) > 0 {
		select {
		case q[0].wake <- struct{}{}:
		default:
		}
	}
}

// sleepOrWake sleeps for d, or until woken or ctx ends.
func sleepOrWake(ctx context.Context, d time.Duration, woken <-chan struct{}) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-woken:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

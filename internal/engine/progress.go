package engine

// Event reports progress of a long verb: one per action of up (after it is
// applied) and one per object down removed. Done and Total count actions;
// Total is 0 where it is not known in advance (down).
type Event struct {
	Kind   string `json:"event"` // "action" (up) or "removed" (down)
	Lab    string `json:"lab"`
	Done   int    `json:"done"`
	Total  int    `json:"total,omitempty"`
	Action string `json:"action"` // the action as a command, or what was removed
}

// WithProgress calls fn for every Event. fn is called from concurrent
// goroutines one at a time (never concurrently).
func WithProgress(fn func(Event)) Option { return func(o *options) { o.progress = fn } }

func (e *Engine) emit(ev Event) {
	if e.progress == nil {
		return
	}
	e.logMu.Lock()
	defer e.logMu.Unlock()
	e.progress(ev)
}

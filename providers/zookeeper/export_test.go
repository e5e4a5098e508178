package zookeeper

// SessionID returns the session id of p's connection for reads and
// writes, for tests.
func SessionID(p *Provider) int64 { return p.conn.SessionID() }

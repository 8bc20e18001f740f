// Package quota counts events in fixed time windows, in a JetStream
// key-value bucket, so that every Herald process sharing a NATS server or
// cluster sees the same counts: the daily SMS caps of the delivery loop and
// the rate limits of the public pages use it.
//
// A count is one key per (subject, window), e.g. "sms.m_1042.20260504";
// increments are compare-and-set, so concurrent processes never lose one.
// Keys are never deleted one by one: the bucket's age limit removes the
// windows that are over.
package quota

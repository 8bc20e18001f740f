// Package eventtest builds the small schema-v1 events the tests of several
// packages publish (Event), so that they all speak of the same incident
// shape.
package eventtest

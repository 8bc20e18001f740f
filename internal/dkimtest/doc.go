// Package dkimtest is a test helper: it checks DKIM signatures with an
// implementation independent of Herald's signer.
package dkimtest

//go:build !unix

package broker

import (
	"fmt"
	"os"
)

// tryLock creates path exclusively; on systems without flock a killed
// process leaves the file behind and it must be removed by hand.
func tryLock(path string) (unlock func(), locked bool, err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
	if os.IsExist(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close(); os.Remove(path) }, true, nil
}

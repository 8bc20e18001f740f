package multilingual

import "testing"

// BenchmarkSplit splits every title and body of the corpus per
// operation; the split/op metric divides by the number of updates.
func BenchmarkSplit(b *testing.B) {
	s := newTestSplitter(b)
	corpus := loadCorpus(b)
	b.ReportAllocs()
	for b.Loop() {
		for _, u := range corpus {
			s.SplitTitle(u.Title)
			s.SplitBody(u.Body)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(corpus)), "ns/update")
}

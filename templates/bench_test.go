package templates

import (
	"testing"
)

// BenchmarkRender renders every corpus update in the three locales for
// one channel per operation: "cold" empties the caches before each
// operation (split, Markdown and templates all run), "cached" serves the
// renderings from the cache and only applies the recipient's values.
// The render/op metric divides by the number of renderings.
func BenchmarkRender(b *testing.B) {
	events := loadCorpus(b)
	r := newTestRenderer(b, testConfig())
	locales := []string{"fr-FR", "en-GB", "it-IT"}
	rcs := make([]Recipient, len(locales))
	for i, l := range locales {
		rcs[i] = testRecipient(b, l)
	}
	renders := float64(len(events) * len(locales))
	all := func(b *testing.B, ch string) {
		for _, ev := range events {
			for _, rc := range rcs {
				if _, err := r.Render(Update{Event: ev, AcceptedAt: acceptedAt}, ch, rc); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	for _, ch := range allChannels {
		b.Run("cold/"+ch, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				r.cache.Purge()
				r.prep.Purge()
				b.StartTimer()
				all(b, ch)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/renders, "ns/render")
		})
	}
	for _, ch := range allChannels {
		b.Run("cached/"+ch, func(b *testing.B) {
			all(b, ch)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				all(b, ch)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/renders, "ns/render")
		})
	}
}

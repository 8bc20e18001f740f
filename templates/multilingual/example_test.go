package multilingual_test

import (
	"fmt"

	"github.com/heraldhq/herald/templates/multilingual"
)

func Example() {
	s, err := multilingual.New(multilingual.Config{})
	if err != nil {
		panic(err)
	}
	body := s.SplitBody("TSR-1723 - Début / Start / Inizio : 03/05/2025 - Fin / End / Fine : En cours / Ongoing / In corso" +
		" - Responsabilité / Responsibility / Responsabilità : Externe / External / Esterna" +
		" FR Les dossiers liés à des transactions refusées ont été annulés." +
		" EN Financing applications linked to declined transactions have been cancelled." +
		" IT Le pratiche collegate a transazioni rifiutate sono state annullate.")
	h := body.Header
	fmt.Println(h.Reference, h.Start.Format("2006-01-02"), h.Ongoing, h.Responsibility["en"])
	texts := body.Texts()
	fmt.Println(texts["en"])
	fmt.Println(s.SplitTitle("INCIDENT PROCESSING | Perturbations paiement Oney / Oney payment disruptions").Texts()["fr"])
	// Output:
	// TSR-1723 2025-05-03 true External
	// Financing applications linked to declined transactions have been cancelled.
	// INCIDENT PROCESSING | Perturbations paiement Oney
}

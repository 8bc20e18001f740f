package incident

import (
	"fmt"
	"sort"

	"golang.org/x/text/language"
)

// Component is one entry of the component catalog: a component id and its
// display name per locale.
type Component struct {
	// ID is the component id used in events and subscriptions.
	ID string `json:"id" yaml:"id" toml:"id"`
	// Names maps a locale ("fr", "en", "it") to the display name.
	Names map[string]string `json:"names" yaml:"names" toml:"names"`
}

// Catalog is the set of components subscribers may name. The zero value is
// an empty catalog that knows no component.
type Catalog struct {
	byID  map[string]Component
	order []string
}

// NewCatalog builds a catalog, checking that ids are well formed and unique
// and that locale keys are BCP 47 tags.
func NewCatalog(components []Component) (*Catalog, error) {
	c := &Catalog{byID: make(map[string]Component, len(components))}
	for i, comp := range components {
		if !ValidComponentID(comp.ID) {
			return nil, fmt.Errorf("components[%d]: invalid id %q", i, comp.ID)
		}
		if _, dup := c.byID[comp.ID]; dup {
			return nil, fmt.Errorf("components[%d]: duplicate id %q", i, comp.ID)
		}
		for loc := range comp.Names {
			if _, err := language.Parse(loc); err != nil {
				return nil, fmt.Errorf("components[%d].names: %q is not a language tag", i, loc)
			}
		}
		c.byID[comp.ID] = comp
		c.order = append(c.order, comp.ID)
	}
	return c, nil
}

// Known reports whether id is in the catalog.
func (c *Catalog) Known(id string) bool {
	if c == nil {
		return false
	}
	_, ok := c.byID[id]
	return ok
}

// IDs returns the component ids in catalog order.
func (c *Catalog) IDs() []string {
	if c == nil {
		return nil
	}
	return append([]string(nil), c.order...)
}

// Name returns the display name of id in the first of locales that has one,
// then in any locale (sorted, for stability), and finally the id itself for
// components missing from the catalog.
func (c *Catalog) Name(id string, locales ...string) string {
	if c == nil {
		return id
	}
	comp, ok := c.byID[id]
	if !ok || len(comp.Names) == 0 {
		return id
	}
	for _, l := range locales {
		if n := comp.Names[l]; n != "" {
			return n
		}
	}
	keys := make([]string, 0, len(comp.Names))
	for k := range comp.Names {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return comp.Names[keys[0]]
}

// Unknown returns the ids of ids that are not in the catalog, in order.
func (c *Catalog) Unknown(ids []string) []string {
	var out []string
	for _, id := range ids {
		if !c.Known(id) {
			out = append(out, id)
		}
	}
	return out
}

// DefaultComponents is the catalog of the status page Herald was first
// written for (the ids its incident history uses), with French, English and
// Italian names. Configuration replaces it.
func DefaultComponents() []Component {
	n := func(id, fr, en, it string) Component {
		return Component{ID: id, Names: map[string]string{"fr": fr, "en": en, "it": it}}
	}
	return []Component{
		n("ecommerce", "Paiement en ligne", "E-commerce payments", "Pagamenti e-commerce"),
		n("nexo-terminals", "Terminaux Nexo", "Nexo terminals", "Terminali Nexo"),
		n("ingenico-terminals", "Terminaux Ingenico", "Ingenico terminals", "Terminali Ingenico"),
		n("3ds", "Authentification 3-D Secure", "3-D Secure authentication", "Autenticazione 3-D Secure"),
		n("oney", "Paiement Oney", "Oney payments", "Pagamenti Oney"),
		n("apple-pay", "Apple Pay", "Apple Pay", "Apple Pay"),
		n("payment-requests", "Demandes de paiement", "Payment requests", "Richieste di pagamento"),
		n("portal", "Portail marchand", "Merchant portal", "Portale esercenti"),
		n("payouts", "Virements", "Payouts", "Bonifici"),
		n("invoicing", "Facturation", "Invoicing", "Fatturazione"),
		n("prestashop", "Module PrestaShop", "PrestaShop module", "Modulo PrestaShop"),
		n("notifications", "Notifications", "Notifications", "Notifiche"),
	}
}

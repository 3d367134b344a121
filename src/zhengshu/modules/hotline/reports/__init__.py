"""Reports over the 12345 orders: per-order facts drawn from the timelines, KPIs defined in
configuration with auditable formulas, periodic handling notices (办理情况通报)."""

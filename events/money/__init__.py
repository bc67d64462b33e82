"""Money done right: events in any currency, and costs computed from tokens.

- `conversion`: exchange rates compiled once per organization (cached per process
  until `Organization.money_version` changes), the rate in force at a timestamp,
  and the exact conversion every writer shares.
- `pricing`: the price of a call from its model and tokens: the organization's own
  prices first, then the genai-prices catalog.
- `services`: writes: rates and prices changed, pending events converted, computed
  costs re-priced, each followed by a rollup rebuild of the days it touched.
"""

"""``python -m viewer`` runs the comparison app."""
from viewer.app import main

raise SystemExit(main())

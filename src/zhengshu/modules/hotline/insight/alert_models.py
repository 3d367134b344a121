"""Tables of early warning (舆情预警): warnings and their deliveries."""

from __future__ import annotations

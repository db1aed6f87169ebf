"""Asset group names, in one place so jobs and selections never misspell them."""

LANDING = "landing"
BRONZE = "bronze"
SILVER = "silver"
GOLD = "gold"
FEATURES = "features"
MODELS = "models"
ADAPTIVITY = "adaptivity"

"""Words of the public lead pages in each language offered; English is the fallback."""

from __future__ import annotations

LANGUAGES = ("en", "it")

_TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "required": "this answer is required",
        "invalid": "not valid",
        "too_long": "at most {n} characters",
        "unknown_option": "choose one of the options offered",
        "submit": "Send",
        "privacy": "Privacy policy",
        "privacy_note": "We handle your data as our privacy policy explains.",
        "consents": "Your choices (optional unless marked)",
        "errors_title": "Please check these answers",
        "thanks": "Thank you!",
        "check_inbox": "We have sent you an email: follow its link to confirm your address.",
        "confirmed": "Your address is confirmed.",
        "your_coupon": "Your coupon code",
        "download": "Download",
        "next": "Continue",
        "start": "Start",
        "confirm_subject": "Please confirm your email address",
        "confirm_body": "Follow this link to confirm your email address",
        "confirm_ignore": "If you did not ask for this, ignore this email.",
        "unsubscribe_title": "Email preferences",
        "unsubscribe_button": "Unsubscribe from marketing email",
        "unsubscribed": "You will receive no more marketing email from us.",
        "required_mark": "required",
    },
    "it": {
        "required": "questa risposta è obbligatoria",
        "invalid": "non valido",
        "too_long": "al massimo {n} caratteri",
        "unknown_option": "scegli una delle opzioni proposte",
        "submit": "Invia",
        "privacy": "Informativa sulla privacy",
        "privacy_note": "Trattiamo i tuoi dati come spiega la nostra informativa sulla privacy.",
        "consents": "Le tue scelte (facoltative salvo indicazione)",
        "errors_title": "Controlla queste risposte",
        "thanks": "Grazie!",
        "check_inbox": "Ti abbiamo inviato un'email: segui il suo link per confermare l'indirizzo.",
        "confirmed": "Il tuo indirizzo è confermato.",
        "your_coupon": "Il tuo codice sconto",
        "download": "Scarica",
        "next": "Continua",
        "start": "Inizia",
        "confirm_subject": "Conferma il tuo indirizzo email",
        "confirm_body": "Segui questo link per confermare il tuo indirizzo email",
        "confirm_ignore": "Se non l'hai chiesto tu, ignora questa email.",
        "unsubscribe_title": "Preferenze email",
        "unsubscribe_button": "Annulla l'iscrizione alle email di marketing",
        "unsubscribed": "Non riceverai più email di marketing da noi.",
        "required_mark": "obbligatorio",
    },
}


def text(key: str, lang: str, **values: object) -> str:
    template = _TEXTS.get(lang, _TEXTS["en"]).get(key) or _TEXTS["en"][key]
    return template.format(**values) if values else template


def texts(lang: str) -> dict[str, str]:
    return {**_TEXTS["en"], **_TEXTS.get(lang, {})}


def pick_language(query: str | None, accept_language: str | None, offered: list[str]) -> str:
    """The visitor's language among those the form offers: ?lang=, then Accept-Language."""
    candidates: list[tuple[float, str]] = []
    if query:
        candidates.append((2.0, query.strip().lower()[:2]))
    for index, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                weight = 0.0
        candidates.append((weight - index * 1e-6, tag.strip().lower()[:2]))
    for _weight, lang in sorted(candidates, reverse=True):
        if lang in offered:
            return lang
    return "en" if "en" in offered or not offered else offered[0]


def localised(values: dict[str, str], lang: str) -> str:
    return values.get(lang) or values.get("en") or next(iter(values.values()), "")

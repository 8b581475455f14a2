// HumanProof widget translations (CAPTCHA UI strings, one object per language).
// The widget picks a language as: lang attribute/option → page language → browser languages → English.

export const MESSAGES = {
  en: { label: "I'm human", verifying: "Verifying…", progress: "Verifying… {percent}%", verified: "Verified", error: "Verification failed", retry: "Try again", expired: "Verification expired. Please verify again.", protected_by: "Protected by HumanProof", privacy: "Privacy", widget_name: "HumanProof human verification" },
  de: { label: "Ich bin ein Mensch", verifying: "Wird überprüft…", progress: "Wird überprüft… {percent}\u00a0%", verified: "Verifiziert", error: "Überprüfung fehlgeschlagen", retry: "Erneut versuchen", expired: "Überprüfung abgelaufen. Bitte erneut überprüfen.", protected_by: "Geschützt durch HumanProof", privacy: "Datenschutz", widget_name: "HumanProof – Bestätigung, dass Sie ein Mensch sind" },
  fr: { label: "Je suis humain", verifying: "Vérification…", progress: "Vérification… {percent}\u00a0%", verified: "Vérifié", error: "Échec de la vérification", retry: "Réessayer", expired: "La vérification a expiré. Veuillez recommencer.", protected_by: "Protégé par HumanProof", privacy: "Confidentialité", widget_name: "Vérification humaine HumanProof" },
  es: { label: "Soy humano", verifying: "Verificando…", progress: "Verificando… {percent}\u00a0%", verified: "Verificado", error: "Error en la verificación", retry: "Reintentar", expired: "La verificación ha caducado. Vuelve a verificar.", protected_by: "Protegido por HumanProof", privacy: "Privacidad", widget_name: "Verificación humana de HumanProof" },
  it: { label: "Sono un essere umano", verifying: "Verifica in corso…", progress: "Verifica in corso… {percent}%", verified: "Verificato", error: "Verifica non riuscita", retry: "Riprova", expired: "Verifica scaduta. Ripeti la verifica.", protected_by: "Protetto da HumanProof", privacy: "Privacy", widget_name: "Verifica umana HumanProof" },
  nl: { label: "Ik ben een mens", verifying: "Bezig met verifiëren…", progress: "Bezig met verifiëren… {percent}%", verified: "Geverifieerd", error: "Verificatie mislukt", retry: "Opnieuw proberen", expired: "Verificatie verlopen. Verifieer opnieuw.", protected_by: "Beveiligd door HumanProof", privacy: "Privacy", widget_name: "Menselijke verificatie van HumanProof" },
  pl: { label: "Jestem człowiekiem", verifying: "Weryfikacja…", progress: "Weryfikacja… {percent}%", verified: "Zweryfikowano", error: "Weryfikacja nie powiodła się", retry: "Spróbuj ponownie", expired: "Weryfikacja wygasła. Zweryfikuj się ponownie.", protected_by: "Chronione przez HumanProof", privacy: "Prywatność", widget_name: "HumanProof – weryfikacja, czy jesteś człowiekiem" },
  cs: { label: "Jsem člověk", verifying: "Ověřování…", progress: "Ověřování… {percent}\u00a0%", verified: "Ověřeno", error: "Ověření se nezdařilo", retry: "Zkusit znovu", expired: "Platnost ověření vypršela. Ověřte se prosím znovu.", protected_by: "Chráněno službou HumanProof", privacy: "Ochrana soukromí", widget_name: "HumanProof – ověření, že jste člověk" },
  pt: { label: "Sou humano", verifying: "Verificando…", progress: "Verificando… {percent}%", verified: "Verificado", error: "Falha na verificação", retry: "Tentar novamente", expired: "A verificação expirou. Verifique novamente.", protected_by: "Protegido por HumanProof", privacy: "Privacidade", widget_name: "Verificação humana HumanProof" },
  sv: { label: "Jag är en människa", verifying: "Verifierar…", progress: "Verifierar… {percent}\u00a0%", verified: "Verifierad", error: "Verifieringen misslyckades", retry: "Försök igen", expired: "Verifieringen har gått ut. Verifiera igen.", protected_by: "Skyddas av HumanProof", privacy: "Integritet", widget_name: "HumanProof – verifiering av att du är en människa" },
};

export const LANGUAGES = Object.keys(MESSAGES);

const has = (obj, key) => Object.prototype.hasOwnProperty.call(obj, key);

// "de-AT" / "DE_at" → "de" if supported, else null.
function match(tag) {
  if (typeof tag !== "string") return null;
  const primary = tag.trim().toLowerCase().split(/[-_]/)[0];
  return primary && primary !== "auto" && has(MESSAGES, primary) ? primary : null;
}

export function pickLanguage(requested, pageLanguage) {
  const candidates = [requested, pageLanguage];
  if (typeof navigator !== "undefined" && navigator) {
    if (Array.isArray(navigator.languages)) candidates.push(...navigator.languages);
    else if (navigator.language) candidates.push(navigator.language);
  }
  for (const tag of candidates) {
    const code = match(tag);
    if (code) return code;
  }
  return "en";
}

export function translate(language, key, params = {}) {
  const table = has(MESSAGES, language) ? MESSAGES[language] : MESSAGES.en;
  const text = has(table, key) ? table[key] : has(MESSAGES.en, key) ? MESSAGES.en[key] : String(key);
  return text.replace(/\{(\w+)\}/g, (whole, name) =>
    params != null && has(params, name) ? String(params[name]) : whole);
}

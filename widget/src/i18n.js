// HumanProof widget translations (CAPTCHA UI strings, one object per language).
// The widget picks a language as: lang attribute/option → page language → browser languages → English.

export const MESSAGES = {
  en: { label: "I'm human", verifying: "Verifying…", progress: "Verifying… {percent}%", verified: "Verified", error: "Verification failed", rate_limited: "Too many attempts. Try again in {seconds} seconds.", refused: "This browser could not be verified. Try another browser or network.", retry: "Try again", expired: "Verification expired. Please verify again.", protected_by: "Protected by HumanProof", privacy: "Privacy", widget_name: "HumanProof human verification", paused: "Verification is paused on this site." },
  de: { label: "Ich bin ein Mensch", verifying: "Wird überprüft…", progress: "Wird überprüft… {percent}\u00a0%", verified: "Verifiziert", error: "Überprüfung fehlgeschlagen", rate_limited: "Zu viele Versuche. Bitte in {seconds}\u00a0s erneut versuchen.", refused: "Dieser Browser konnte nicht verifiziert werden. Versuchen Sie einen anderen Browser oder ein anderes Netzwerk.", retry: "Erneut versuchen", expired: "Überprüfung abgelaufen. Bitte erneut überprüfen.", protected_by: "Geschützt durch HumanProof", privacy: "Datenschutz", widget_name: "HumanProof – Bestätigung, dass Sie ein Mensch sind", paused: "Die Überprüfung ist auf dieser Website pausiert." },
  fr: { label: "Je suis humain", verifying: "Vérification…", progress: "Vérification… {percent}\u00a0%", verified: "Vérifié", error: "Échec de la vérification", rate_limited: "Trop de tentatives. Réessayez dans {seconds}\u00a0s.", refused: "Ce navigateur n'a pas pu être vérifié. Essayez un autre navigateur ou un autre réseau.", retry: "Réessayer", expired: "La vérification a expiré. Veuillez recommencer.", protected_by: "Protégé par HumanProof", privacy: "Confidentialité", widget_name: "Vérification humaine HumanProof", paused: "La vérification est suspendue sur ce site." },
  es: { label: "Soy humano", verifying: "Verificando…", progress: "Verificando… {percent}\u00a0%", verified: "Verificado", error: "Error en la verificación", rate_limited: "Demasiados intentos. Vuelve a intentarlo en {seconds}\u00a0s.", refused: "No se pudo verificar este navegador. Prueba con otro navegador u otra red.", retry: "Reintentar", expired: "La verificación ha caducado. Vuelve a verificar.", protected_by: "Protegido por HumanProof", privacy: "Privacidad", widget_name: "Verificación humana de HumanProof", paused: "La verificación está en pausa en este sitio." },
  it: { label: "Sono un essere umano", verifying: "Verifica in corso…", progress: "Verifica in corso… {percent}%", verified: "Verificato", error: "Verifica non riuscita", rate_limited: "Troppi tentativi. Riprova tra {seconds}\u00a0s.", refused: "Impossibile verificare questo browser. Prova un altro browser o un'altra rete.", retry: "Riprova", expired: "Verifica scaduta. Ripeti la verifica.", protected_by: "Protetto da HumanProof", privacy: "Privacy", widget_name: "Verifica umana HumanProof", paused: "La verifica è sospesa su questo sito." },
  nl: { label: "Ik ben een mens", verifying: "Bezig met verifiëren…", progress: "Bezig met verifiëren… {percent}%", verified: "Geverifieerd", error: "Verificatie mislukt", rate_limited: "Te veel pogingen. Probeer het over {seconds}\u00a0s opnieuw.", refused: "Deze browser kon niet worden geverifieerd. Probeer een andere browser of een ander netwerk.", retry: "Opnieuw proberen", expired: "Verificatie verlopen. Verifieer opnieuw.", protected_by: "Beveiligd door HumanProof", privacy: "Privacy", widget_name: "Menselijke verificatie van HumanProof", paused: "Verificatie is op deze site gepauzeerd." },
  pl: { label: "Jestem człowiekiem", verifying: "Weryfikacja…", progress: "Weryfikacja… {percent}%", verified: "Zweryfikowano", error: "Weryfikacja nie powiodła się", rate_limited: "Zbyt wiele prób. Spróbuj ponownie za {seconds}\u00a0s.", refused: "Nie udało się zweryfikować tej przeglądarki. Spróbuj innej przeglądarki lub sieci.", retry: "Spróbuj ponownie", expired: "Weryfikacja wygasła. Zweryfikuj się ponownie.", protected_by: "Chronione przez HumanProof", privacy: "Prywatność", widget_name: "HumanProof – weryfikacja, czy jesteś człowiekiem", paused: "Weryfikacja na tej stronie jest wstrzymana." },
  cs: { label: "Jsem člověk", verifying: "Ověřování…", progress: "Ověřování… {percent}\u00a0%", verified: "Ověřeno", error: "Ověření se nezdařilo", rate_limited: "Příliš mnoho pokusů. Zkuste to znovu za {seconds}\u00a0s.", refused: "Tento prohlížeč se nepodařilo ověřit. Zkuste jiný prohlížeč nebo síť.", retry: "Zkusit znovu", expired: "Platnost ověření vypršela. Ověřte se prosím znovu.", protected_by: "Chráněno službou HumanProof", privacy: "Ochrana soukromí", widget_name: "HumanProof – ověření, že jste člověk", paused: "Ověřování je na tomto webu pozastaveno." },
  pt: { label: "Sou humano", verifying: "Verificando…", progress: "Verificando… {percent}%", verified: "Verificado", error: "Falha na verificação", rate_limited: "Muitas tentativas. Tente novamente em {seconds}\u00a0s.", refused: "Não foi possível verificar este navegador. Tente outro navegador ou outra rede.", retry: "Tentar novamente", expired: "A verificação expirou. Verifique novamente.", protected_by: "Protegido por HumanProof", privacy: "Privacidade", widget_name: "Verificação humana HumanProof", paused: "A verificação está em pausa neste site." },
  sv: { label: "Jag är en människa", verifying: "Verifierar…", progress: "Verifierar… {percent}\u00a0%", verified: "Verifierad", error: "Verifieringen misslyckades", rate_limited: "För många försök. Försök igen om {seconds}\u00a0s.", refused: "Den här webbläsaren kunde inte verifieras. Prova en annan webbläsare eller ett annat nätverk.", retry: "Försök igen", expired: "Verifieringen har gått ut. Verifiera igen.", protected_by: "Skyddas av HumanProof", privacy: "Integritet", widget_name: "HumanProof – verifiering av att du är en människa", paused: "Verifieringen är pausad på den här webbplatsen." },
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

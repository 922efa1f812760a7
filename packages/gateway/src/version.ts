declare const __SBX_GATEWAY_VERSION__: string | undefined;

/** This build's version (package.json's, put in by the bundler; "dev" when run from source). */
export const GATEWAY_VERSION: string = typeof __SBX_GATEWAY_VERSION__ === "string" ? __SBX_GATEWAY_VERSION__ : "dev";

/**
 * Domain errors carry the HTTP status they map to, so the API's problem+json middleware can
 * answer with a precise status without the domain knowing about Koa.
 */
export class DomainError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly title: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class BadRequestError extends DomainError {
  constructor(message: string) {
    super(message, 400, 'Bad Request');
  }
}

export class NotFoundError extends DomainError {
  constructor(message: string) {
    super(message, 404, 'Not Found');
  }
}

export class ConflictError extends DomainError {
  constructor(message: string) {
    super(message, 409, 'Conflict');
  }
}

export class PayloadTooLargeError extends DomainError {
  constructor(message: string) {
    super(message, 413, 'Payload Too Large');
  }
}

export class UnavailableError extends DomainError {
  constructor(message: string) {
    super(message, 503, 'Service Unavailable');
  }
}

export class ForbiddenError extends DomainError {
  constructor(message: string) {
    super(message, 403, 'Forbidden');
  }
}
